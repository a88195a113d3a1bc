package memqueue_test

import (
	"testing"

	"github.com/crewgo/crew/queue/memqueue"
	"github.com/crewgo/crew/queue/queuetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	queuetest.Suite{
		New: func(t *testing.T) queuetest.Queue { return memqueue.New() },
		Dead: func(t *testing.T, q queuetest.Queue) []string {
			var ids []string
			for _, m := range q.(*memqueue.Queue).DeadLetters() {
				ids = append(ids, m.ID)
			}
			return ids
		},
	}.Run(t)
}
