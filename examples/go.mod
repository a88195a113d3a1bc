module github.com/crewgo/crew/examples

go 1.26

replace github.com/crewgo/crew => ../

require (
	github.com/crewgo/crew v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
	golang.org/x/time v0.15.0
)
