package postgres_test

import (
	"testing"

	"github.com/crewgo/crew/queue/postgres"
	"github.com/crewgo/crew/queue/queuetest"
)

func TestConformance(t *testing.T) {
	queuetest.Suite{
		New: func(t *testing.T) queuetest.Queue { return openDB(t).Queue("conformance") },
		Dead: func(t *testing.T, q queuetest.Queue) []string {
			dead, err := q.(*postgres.Queue).Dead(t.Context())
			if err != nil {
				t.Fatalf("Dead: %v", err)
			}
			var ids []string
			for _, d := range dead {
				ids = append(ids, d.Message.ID)
			}
			return ids
		},
	}.Run(t)
}
