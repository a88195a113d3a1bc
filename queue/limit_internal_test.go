package queue

import (
	"testing"
	"time"
)

// A key's pace is its handlers' average run until its oldest handler looks
// stuck: a handler of a few hundred nanoseconds that waited milliseconds to
// be scheduled must not make the key's postponed messages stay away for
// seconds.
func TestKeyPaceCountsAnOldHandlerOnlyOnceItLooksStuck(t *testing.T) {
	const avg = 40 * time.Nanosecond
	for _, tc := range []struct {
		name  string
		age   time.Duration
		cycle time.Duration
		want  func(pace time.Duration) bool
	}{
		{"scheduled late", 5 * time.Millisecond, 10 * time.Microsecond,
			func(p time.Duration) bool { return p == avg }},
		{"past the floor but within four rounds", 30 * time.Millisecond, 10 * time.Millisecond,
			func(p time.Duration) bool { return p == avg }},
		{"stuck", time.Second, 10 * time.Microsecond,
			func(p time.Duration) bool { return p >= time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &keyLimit{avg: avg}
			ks := &keyState{started: []time.Time{time.Now().Add(-tc.age)}, cycle: tc.cycle}
			if p := k.pace(ks); !tc.want(p) {
				t.Errorf("pace = %v with the oldest handler %v old", p, tc.age)
			}
		})
	}
}
