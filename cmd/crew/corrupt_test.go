package main

import (
	"context"
	"os"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/crewgo/crew/queue/sqlite"
)

// corruptqueue FILE writes a queue file whose schema is intact but whose
// messages, in queue "default", are on corrupt pages: what a disk that
// fails under the file leaves behind.
func cmdCorruptQueue(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: corruptqueue file")
	}
	path := ts.MkAbs(args[0])
	fill := func(n int) int64 {
		db, err := sqlite.Open(path)
		ts.Check(err)
		body := []byte(strings.Repeat("x", 1024))
		for range n {
			_, err := db.Queue("default").Publish(context.Background(), body)
			ts.Check(err)
		}
		ts.Check(db.Close()) // checkpoints the write-ahead log into the file
		info, err := os.Stat(path)
		ts.Check(err)
		return info.Size()
	}
	from := fill(1) // the schema and the queue's tables
	size := fill(200)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	ts.Check(err)
	defer f.Close()
	garbage := strings.Repeat("\xa5corrupt", int(size-from)/8+1)[:size-from]
	_, err = f.WriteAt([]byte(garbage), from)
	ts.Check(err)
}
