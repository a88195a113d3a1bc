package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/crewgo/crew/queue"
)

// TestDeadLetterJSONRoundTripsEveryByte checks that the JSON of crew dead
// list --json gives back every body byte for byte, and the body as a
// string only when that string is the body.
func TestDeadLetterJSONRoundTripsEveryByte(t *testing.T) {
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	for _, body := range [][]byte{every, {0x00}, {0xff}, []byte("plain text\n"), []byte("h\u00e9llo"), {}} {
		d := queue.DeadMessage{Message: &queue.Message{ID: "1", Body: body}, At: time.Unix(0, 0)}
		data, err := json.Marshal(newDeadLetter(d))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Body       *string `json:"body"`
			BodyBase64 []byte  `json:"body_base64"`
		}
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.BodyBase64, body) {
			t.Errorf("body_base64 of %q read back as %q", body, got.BodyBase64)
		}
		if got.Body != nil && *got.Body != string(body) {
			t.Errorf("body of %q read back as %q", body, *got.Body)
		}
		if got.Body == nil && utf8.Valid(body) {
			t.Errorf("no body for the UTF-8 body %q", body)
		}
	}
}
