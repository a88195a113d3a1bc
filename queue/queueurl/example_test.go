package queueurl_test

import (
	"fmt"

	"github.com/crewgo/crew/queue/queueurl"
)

func ExampleParse() {
	known := []string{"queue", "busy_timeout"}
	base, params, err := queueurl.Parse("sqlite:///var/lib/app/crew.db?queue=emails", known)
	fmt.Println(base, params["queue"], err)

	_, _, err = queueurl.Parse("sqlite:///var/lib/app/crew.db?qeueu=emails", known)
	fmt.Println(err)
	// Output:
	// sqlite:///var/lib/app/crew.db emails <nil>
	// unknown parameter "qeueu" (known: queue, busy_timeout)
}
