package joblog

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEntryIsOneLineOfNineTabSeparatedFields(t *testing.T) {
	e := Entry{
		Seq:     12,
		Start:   time.UnixMilli(1763769600123),
		Runtime: 1500 * time.Millisecond,
		Exitval: 2,
		Command: "printf 'a\tb\nc'",
	}
	want := "12\t:\t1763769600.123\t   1.500\t0\t0\t2\t0\tprintf 'a b c'\n"
	if got := e.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestReadParsesWhatWriterWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.log")
	w, err := Create(path, false)
	if err != nil {
		t.Fatal(err)
	}
	in := []Entry{
		{Seq: 1, Start: time.UnixMilli(1000), Runtime: 5 * time.Millisecond, Command: "true 1"},
		{Seq: 2, Start: time.UnixMilli(2000), Runtime: time.Second, Exitval: -1, Signal: 15, Command: "sleep 2"},
	}
	for _, e := range in {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d entries, wrote %d", len(out), len(in))
	}
	for i := range in {
		if out[i] != in[i] {
			t.Errorf("entry %d: read %+v, wrote %+v", i, out[i], in[i])
		}
	}
	if !out[0].Done() || out[1].Done() {
		t.Errorf("Done: %v, %v; want true, false", out[0].Done(), out[1].Done())
	}
}

func TestCreateWithResumeKnowsOnlySuccessfulJobsAsDone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.log")
	log := Header +
		"1\t:\t1.000\t0.100\t0\t0\t0\t0\tok\n" +
		"2\t:\t1.000\t0.100\t0\t0\t1\t0\tfailed\n" +
		"3\t:\t1.000\t0.100\t0\t0\t0\t9\tkilled\n" +
		"4\t:\t1.0" // cut short by a crash
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Create(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if done := w.Done(); len(done) != 1 || !done[1] {
		t.Errorf("done = %v, want only 1", done)
	}
	w.Close()

	w, err = Create(filepath.Join(t.TempDir(), "absent.log"), true)
	if err != nil {
		t.Fatalf("resuming a log that does not exist yet: %v", err)
	}
	if done := w.Done(); len(done) != 0 {
		t.Errorf("a new log: done = %v, want none", done)
	}
	w.Close()
}

// TestCreateWithResumeKnowsTheFailedJobs checks that a job is failed when
// the log records a failure of it and no success, whatever the order.
func TestCreateWithResumeKnowsTheFailedJobs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.log")
	log := Header +
		"1\t:\t1.000\t0.100\t0\t0\t0\t0\tok\n" +
		"2\t:\t1.000\t0.100\t0\t0\t1\t0\tfailed\n" +
		"3\t:\t1.000\t0.100\t0\t0\t-1\t15\tkilled\n" +
		"4\t:\t1.000\t0.100\t0\t0\t1\t0\tfailed, then done\n" +
		"4\t:\t2.000\t0.100\t0\t0\t0\t0\tfailed, then done\n"
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Create(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if failed := w.Failed(); len(failed) != 2 || !failed[2] || !failed[3] {
		t.Errorf("failed = %v, want 2 and 3", failed)
	}
	if done := w.Done(); len(done) != 2 || !done[1] || !done[4] {
		t.Errorf("done = %v, want 1 and 4", done)
	}
}

func TestCreateWithResumeLeavesAMalformedLogAsItWas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.log")
	log := Header + "garbage\n" + "4\t:\t1.0"
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Create(path, true)
	if want := "job log " + path + ": line 2: want 9 tab-separated fields, found 1"; err == nil || err.Error() != want {
		t.Errorf("Create = %v, want %q", err, want)
	}
	if data, _ := os.ReadFile(path); string(data) != log {
		t.Errorf("the log changed to %q", data)
	}
}

// TestCreateRefusesALogThatAnotherRunHolds checks that a second run cannot
// take a log while the first one writes it, and can once it is closed.
func TestCreateRefusesALogThatAnotherRunHolds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.log")
	first, err := Create(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Write(Entry{Seq: 1, Command: "first"}); err != nil {
		t.Fatal(err)
	}
	for _, resume := range []bool{true, false} {
		if w, err := Create(path, resume); !errors.Is(err, ErrLocked) {
			if err == nil {
				w.Close()
			}
			t.Errorf("Create(resume=%v) while another Writer holds the log: %v, want ErrLocked", resume, err)
		}
	}
	// The refused runs changed nothing.
	if data, _ := os.ReadFile(path); !strings.HasSuffix(string(data), "\tfirst\n") {
		t.Errorf("log after the refused runs: %q", data)
	}
	first.Close()
	second, err := Create(path, true)
	if err != nil {
		t.Fatalf("Create after the first Writer closed: %v", err)
	}
	second.Close()
}

func TestReadRejectsMalformedLinesByNumber(t *testing.T) {
	for _, tc := range []struct{ log, want string }{
		{Header + "1\t:\t1\n", "line 2: want 9 tab-separated fields, found 3"},
		{Header + "x\t:\t1\t1\t0\t0\t0\t0\tc\n", `line 2: Seq "x" is not a whole number`},
		{Header + "1\t:\tnow\t1\t0\t0\t0\t0\tc\n", `line 2: Starttime "now" is not a number`},
	} {
		_, err := Read(strings.NewReader(tc.log))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Read(%q) = %v, want %q", tc.log, err, tc.want)
		}
	}
}

func TestCreateWithResumeAppendsAfterTheLastWholeLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.log")
	if err := os.WriteFile(path, []byte(Header+"1\t:\t1.000\t0.100\t0\t0\t0\t0\tok\n2\t:\t1.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Create(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(Entry{Seq: 2, Start: time.UnixMilli(1000), Command: "again"}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data, _ := os.ReadFile(path)
	want := Header + "1\t:\t1.000\t0.100\t0\t0\t0\t0\tok\n" + "2\t:\t1.000\t   0.000\t0\t0\t0\t0\tagain\n"
	if string(data) != want {
		t.Errorf("log:\n%q\nwant:\n%q", data, want)
	}

	// Without resume, the log starts afresh, header first.
	if w, err = Create(path, false); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if data, _ := os.ReadFile(path); string(data) != Header {
		t.Errorf("fresh log: %q, want just the header", data)
	}

	// A log that holds only half a header gets a whole one.
	if err := os.WriteFile(path, []byte("Seq\tHo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if w, err = Create(path, true); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if data, _ := os.ReadFile(path); string(data) != Header {
		t.Errorf("resumed half header: %q, want just the header", data)
	}
}

// TestCreateWritesToAPipe checks that a log can be a pipe, such as
// /dev/stderr, which cannot be truncated.
func TestCreateWritesToAPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	jl, err := Create("/dev/fd/"+strconv.Itoa(int(w.Fd())), false)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := jl.Write(Entry{Seq: 1, Start: time.UnixMilli(1000), Command: "true"}); err != nil {
		t.Fatal(err)
	}
	jl.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := Header + "1\t:\t1.000\t   0.000\t0\t0\t0\t0\ttrue\n"; string(data) != want {
		t.Errorf("the pipe got %q, want %q", data, want)
	}
}
