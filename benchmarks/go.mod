module github.com/crewgo/crew/benchmarks

go 1.26

replace github.com/crewgo/crew => ../
