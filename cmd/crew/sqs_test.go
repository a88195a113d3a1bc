package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/crewgo/crew/queue/sqs"
	"github.com/crewgo/crew/queue/sqs/sqstest"
)

// TestWorkOnSQSSharesTheLoadAndLosesNothingWhenOneWorkerIsKilled runs three
// crew work processes on one SQS queue (a local emulator), SIGKILLs one of
// them mid-run, and checks that the other two handle every message, that
// all three took part, and that the survivors drain on SIGTERM.
func TestWorkOnSQSSharesTheLoadAndLosesNothingWhenOneWorkerIsKilled(t *testing.T) {
	srv := sqstest.Start(t)
	queueURL := srv.CreateQueue(t, "jobs", 1000)
	q := sqs.New(srv.Client(), queueURL)
	defer q.Close()
	const n = 300
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	published, err := q.PublishBatch(t.Context(), bodies)
	if err != nil {
		t.Fatal(err)
	}

	sharedWork{
		url:         "sqs+http://" + srv.Addr + "/" + sqstest.Account + "/jobs?region=" + sqstest.Region + "&wait=1s",
		env:         srv.Env(),
		concurrency: 4,
		script:      `sleep 0.01; echo "$CREW_MESSAGE_ID" >> "$RECORDS"`,
		killAfter:   20,
		patience:    60 * time.Second,
	}.run(t, published)
}
