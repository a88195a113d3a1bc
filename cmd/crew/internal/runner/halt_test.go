package runner

import "testing"

func TestParseHaltReadsGNUParallelsValues(t *testing.T) {
	for in, want := range map[string]Halt{
		"never":         {},
		"soon,fail=1":   {Fail: 1},
		"now,fail=3":    {Now: true, Fail: 3},
		"soon,fail=25%": {Fail: 25, Percent: true},
		"now,fail=100%": {Now: true, Fail: 100, Percent: true},
	} {
		got, err := ParseHalt(in)
		if err != nil || got != want {
			t.Errorf("ParseHalt(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for _, in := range []string{"", "soon", "now,", "later,fail=1", "soon,fail=0", "soon,fail=-1", "soon,fail=x", "now,fail=101%", "now,success=1", "soon,fail=1,fail=2"} {
		if h, err := ParseHalt(in); err == nil {
			t.Errorf("ParseHalt(%q) = %+v, want an error", in, h)
		}
	}
}

func TestHaltReachedCountsJobsOrAShareOfThem(t *testing.T) {
	for _, tc := range []struct {
		h             Halt
		failed, total int64
		want          bool
	}{
		{Halt{}, 100, 100, false},
		{Halt{Fail: 2}, 1, 0, false},
		{Halt{Fail: 2}, 2, 0, true},
		{Halt{Fail: 25, Percent: true}, 2, 10, false}, // 20%
		{Halt{Fail: 25, Percent: true}, 3, 10, true},  // 30%, as GNU parallel: 2.5 jobs round up
		{Halt{Fail: 30, Percent: true}, 3, 10, true},
		{Halt{Fail: 100, Percent: true}, 9, 10, false},
		{Halt{Fail: 100, Percent: true}, 10, 10, true},
		{Halt{Fail: 1, Percent: true}, 5, 0, false}, // the total is not known
	} {
		if got := tc.h.reached(tc.failed, tc.total); got != tc.want {
			t.Errorf("%v: %d of %d failed: reached = %v, want %v", tc.h, tc.failed, tc.total, got, tc.want)
		}
	}
}
