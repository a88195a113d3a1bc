package sqlite_test

import (
	"context"
	"testing"
	"time"
)

// BenchmarkReceiveAck measures the queue's own cost per message, without a
// consumer: one goroutine receives up to 8 messages and acknowledges them in
// one call.
func BenchmarkReceiveAck(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run("sync="+sync, func(b *testing.B) {
			ctx := context.Background()
			q := openDB(b, sqliteSync(sync)).Queue("bench")
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i] = make([]byte, 100)
			}
			if _, err := q.PublishBatch(ctx, bodies); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for done := 0; done < b.N; {
				msgs, err := q.Receive(ctx, 8, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if err := q.Ack(ctx, msgs...); err != nil {
					b.Fatal(err)
				}
				done += len(msgs)
			}
		})
	}
}
