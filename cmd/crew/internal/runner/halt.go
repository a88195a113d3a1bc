package runner

import (
	"fmt"
	"strconv"
	"strings"
)

// Halt says when failures end a run early, as GNU parallel's --halt does.
// The zero Halt never halts.
type Halt struct {
	// Now stops the running jobs too, the moment the policy is met
	// (SIGTERM to their process groups, SIGKILL after Config.KillAfter).
	// Otherwise ("soon") running jobs finish; in both cases no new job
	// starts, and no retry either.
	Now bool
	// Fail is how many jobs must fail, after their retries, for the run to
	// halt; 0 never halts.
	Fail int
	// Percent makes Fail a percentage, from 1 to 100, of the jobs to run.
	// The runner then reads all of its input before it starts a job, to
	// know how many there are.
	Percent bool
}

// ParseHalt parses a --halt value with GNU parallel's meanings: "never",
// or "now" or "soon" followed by ",fail=N" (N jobs) or ",fail=N%" (N
// percent of the jobs).
func ParseHalt(s string) (Halt, error) {
	if s == "never" {
		return Halt{}, nil
	}
	when, why, ok := strings.Cut(s, ",")
	count, found := strings.CutPrefix(why, "fail=")
	if !ok || !found || (when != "now" && when != "soon") {
		return Halt{}, fmt.Errorf("--halt must be never, now,fail=N, now,fail=N%%, soon,fail=N or soon,fail=N%%, not %q", s)
	}
	h := Halt{Now: when == "now"}
	count, h.Percent = strings.CutSuffix(count, "%")
	n, err := strconv.Atoi(count)
	switch {
	case err != nil || n < 1:
		return Halt{}, fmt.Errorf("--halt %s: fail= wants a whole number of jobs from 1, or a percentage, not %q", when, strings.TrimPrefix(why, "fail="))
	case h.Percent && n > 100:
		return Halt{}, fmt.Errorf("--halt %s: fail= wants a percentage from 1%% to 100%%, not %d%%", when, n)
	}
	h.Fail = n
	return h, nil
}

// String formats h as ParseHalt reads it.
func (h Halt) String() string {
	if h.Fail == 0 {
		return "never"
	}
	s := "soon"
	if h.Now {
		s = "now"
	}
	s += ",fail=" + strconv.Itoa(h.Fail)
	if h.Percent {
		s += "%"
	}
	return s
}

// reached reports whether failed jobs, out of total jobs to run, meet the
// policy. As in GNU parallel, a percentage is met when the failures reach
// that share of the total: 3 of 10 jobs meet fail=25%.
func (h Halt) reached(failed, total int64) bool {
	switch {
	case h.Fail == 0:
		return false
	case h.Percent:
		return total > 0 && failed*100 >= total*int64(h.Fail)
	}
	return failed >= int64(h.Fail)
}
