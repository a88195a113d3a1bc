package jetstream_test

import (
	"context"
	"strings"
	"testing"

	"github.com/crewgo/crew/queue/jetstream"
	"github.com/crewgo/crew/queue/queuetest"
)

func TestConformance(t *testing.T) {
	js := connect(t, startServer(t, t.TempDir(), 0).ClientURL())
	queuetest.Suite{
		New: func(t *testing.T) queuetest.Queue {
			if strings.HasSuffix(t.Name(), "/PriorityThenAge") {
				t.Skip("JetStream delivers in stream order and has no message priorities; Publish with a priority fails with ErrNoPriority")
			}
			if strings.HasSuffix(t.Name(), "/FirstReceivedKeptOnRedelivery") {
				t.Skip("JetStream keeps no time of a message's first delivery: a redelivery's FirstReceived is zero")
			}
			return newQueue(t, js)
		},
		Dead: func(t *testing.T, q queuetest.Queue) []string {
			dead, err := q.(*jetstream.Queue).Dead(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]string, len(dead))
			for i, d := range dead {
				ids[i] = d.Message.ID
			}
			return ids
		},
	}.Run(t)
}
