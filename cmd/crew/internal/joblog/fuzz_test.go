package joblog

import (
	"strings"
	"testing"
)

// FuzzRead checks that Read never panics, and that what it reads is what
// the Writer writes: every entry, formatted again, reads back the same.
func FuzzRead(f *testing.F) {
	for _, seed := range []string{
		Header,
		Header + "1\t:\t1763769600.123\t   0.004\t0\t0\t0\t0\tgzip a.log\n",
		Header + "2\t:\t1.000\t0.100\t0\t0\t-1\t15\tsleep 30\n3\t:\t1.0",
		"1\t:\t0.001\t0.123\t0\t0\t127\t0\tno such\tcommand\n",
		"x\t:\t1\t1\t0\t0\t0\t0\tc\n",
		"1\t:\tNaN\t1\t0\t0\t0\t0\tc\n",
		"1\t:\t1e300\t-1\t0\t0\t0\t0\tc\r\n",
		"",
		"\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Read(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		var again strings.Builder
		for _, e := range entries {
			again.WriteString(e.String())
		}
		reread, err := Read(strings.NewReader(again.String()))
		if err != nil {
			t.Fatalf("Read cannot read what Entry.String wrote: %v\n%q", err, again.String())
		}
		if len(reread) != len(entries) {
			t.Fatalf("read %d entries back, wrote %d", len(reread), len(entries))
		}
		for i, e := range entries {
			want := e
			want.Command = oneLine(e.Command)
			if reread[i] != want {
				t.Errorf("entry %d: read back %q, wrote %q", i, reread[i].String(), want.String())
			}
		}
	})
}

func TestReadRejectsTimesThatDoNotFit(t *testing.T) {
	for _, line := range []string{
		"1\t:\tNaN\t1\t0\t0\t0\t0\tc\n",
		"1\t:\t1e300\t1\t0\t0\t0\t0\tc\n",
		"1\t:\t1\t-Inf\t0\t0\t0\t0\tc\n",
		"1\t:\t1\t1e10\t0\t0\t0\t0\tc\n",
	} {
		if _, err := Read(strings.NewReader(line)); err == nil {
			t.Errorf("Read(%q) accepted it", line)
		}
	}
}
