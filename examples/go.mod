module github.com/crewgo/crew/examples

go 1.26

replace github.com/crewgo/crew => ../
