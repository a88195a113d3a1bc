module github.com/crewgo/crew

go 1.26

require (
	go.uber.org/goleak v1.3.0
	golang.org/x/time v0.15.0
)
