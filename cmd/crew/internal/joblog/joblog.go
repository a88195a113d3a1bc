// Package joblog writes and reads the job log of crew run, in the
// tab-separated format of GNU parallel's --joblog, so that tools written for
// one read the other's:
//
//	Seq	Host	Starttime	JobRuntime	Send	Receive	Exitval	Signal	Command
//	1	:	1763769600.123	   0.004	0	0	0	0	gzip a.log
//
// Seq is the job's input line number, from 1. Host is ":" (this machine).
// Starttime is in seconds since the Unix epoch and JobRuntime in seconds,
// both to the millisecond. Send and Receive are always 0. Exitval is the
// exit status, -1 for a job that a signal ended and 127 for one that could
// not be started; Signal is the signal's number, or 0.
package joblog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Header is the first line of every job log.
const Header = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"

// Entry is one line of a job log: one finished job.
type Entry struct {
	Seq     int64
	Start   time.Time
	Runtime time.Duration
	Exitval int
	Signal  int
	Command string
}

// Done reports whether the entry records a job that succeeded.
func (e Entry) Done() bool { return e.Exitval == 0 && e.Signal == 0 }

// String formats the entry as a job log line, newline included. Tabs and
// newlines in Command are written as spaces, so that the line stays one
// line of nine fields.
func (e Entry) String() string {
	start := float64(e.Start.UnixMilli()) / 1e3
	return fmt.Sprintf("%d\t:\t%.3f\t%8.3f\t0\t0\t%d\t%d\t%s\n",
		e.Seq, start, e.Runtime.Seconds(), e.Exitval, e.Signal, oneLine(e.Command))
}

// oneLine replaces the tabs and line breaks of a command with spaces.
func oneLine(cmd string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, cmd)
}

// ErrLocked is the error of [Create] for a job log that another run holds.
var ErrLocked = errors.New("in use by another crew run")

// Writer appends entries to a job log file, which it holds locked from
// [Create] to Close. It is safe for concurrent use; each entry is written
// with one write call to a file opened for appending, so that a crash leaves
// whole lines behind.
type Writer struct {
	mu     sync.Mutex
	f      *os.File
	done   map[int64]bool
	failed map[int64]bool
}

// Create opens the job log at path for one run and takes an exclusive lock
// on it (flock) that lasts until Close or the process's end, so that two
// runs never share a log: a resumed run would otherwise start the jobs that
// the other one is running. Create returns at once: an error wrapping
// [ErrLocked] if another process holds the lock.
//
// Without resume, the log starts afresh. With resume, Create first reads the
// log (an error naming the line if one is malformed; the file is left as it
// was), then appends to what it holds after its last whole line, writing
// the header only if the file is new or empty; [Writer.Done] tells which
// jobs the log recorded as done. A log that is not a regular file, such as
// /dev/stderr, is neither locked nor read: the header and the entries are
// written to it.
func Create(path string, resume bool) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("job log %s: %w", path, errors.Unwrap(err))
	}
	w := &Writer{f: f, done: map[int64]bool{}, failed: map[int64]bool{}}
	if err := w.prepare(resume); err != nil {
		f.Close()
		return nil, fmt.Errorf("job log %s: %w", path, err)
	}
	return w, nil
}

// prepare locks the file, and then reads it (with resume) or empties it, and
// leaves it ready for the next entry. A log that is not a regular file, such
// as /dev/stderr, is only written to: it cannot be read back, and a lock on
// a terminal would be a lock on every other run in it.
func (w *Writer) prepare(resume bool) error {
	fi, err := w.f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		_, err := io.WriteString(w.f, Header)
		return err
	}
	if err := syscall.Flock(int(w.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return ErrLocked
		}
		return fmt.Errorf("lock: %w", err)
	}
	var size int64
	if resume {
		entries, whole, err := readWhole(w.f)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Done() {
				w.done[e.Seq] = true
			} else {
				w.failed[e.Seq] = true
			}
		}
		// A job that failed and then succeeded in a later run is done.
		for seq := range w.done {
			delete(w.failed, seq)
		}
		// A crash can leave half a line at the end: the next entry must
		// start a line of its own.
		size = whole
	}
	if err := w.f.Truncate(size); err != nil {
		return err
	}
	if size == 0 {
		if _, err := io.WriteString(w.f, Header); err != nil {
			return err
		}
	}
	return nil
}

// readWhole reads the entries of the log f from its start, and returns
// them with the length of its whole lines.
func readWhole(f *os.File) ([]Entry, int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	cr := &countingReader{r: f}
	entries, err := Read(cr)
	return entries, cr.whole, err
}

// countingReader counts the bytes up to the last newline it has read.
type countingReader struct {
	r     io.Reader
	n     int64
	whole int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if i := bytes.LastIndexByte(p[:n], '\n'); i >= 0 {
		c.whole = c.n + int64(i) + 1
	}
	c.n += int64(n)
	return n, err
}

// Done returns the Seq numbers of the jobs that the log recorded as done
// when Create opened it with resume; none without resume.
func (w *Writer) Done() map[int64]bool { return w.done }

// Failed returns the Seq numbers of the jobs that the log recorded as
// failed, and never as done, when Create opened it with resume; none
// without resume.
func (w *Writer) Failed() map[int64]bool { return w.failed }

// Write appends e to the log.
func (w *Writer) Write(e Entry) error {
	line := e.String()
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := io.WriteString(w.f, line)
	return err
}

// Close releases the lock and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// Read parses a job log. A last line without its newline is ignored: it is
// what a crash in the middle of a write leaves behind. Any other line that
// is not an entry is an error naming its line number.
func Read(r io.Reader) ([]Entry, error) {
	var out []Entry
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err == io.EOF {
			return out, nil // a partial last line is dropped
		}
		if err != nil {
			return nil, err
		}
		line = strings.TrimSuffix(line, "\n")
		if n == 1 && line+"\n" == Header {
			continue
		}
		e, perr := parse(line)
		if perr != nil {
			return nil, fmt.Errorf("line %d: %w", n, perr)
		}
		out = append(out, e)
	}
}

// The bounds of the times of a log, in seconds, a little inside what fits:
// a Starttime's milliseconds in an int64, a JobRuntime in a time.Duration
// (about 292 years).
const (
	maxStart   = 9e15
	maxRuntime = 9e9
)

func parse(line string) (Entry, error) {
	f := strings.SplitN(line, "\t", 9)
	if len(f) != 9 {
		return Entry{}, fmt.Errorf("want 9 tab-separated fields, found %d", len(f))
	}
	var e Entry
	var err error
	num := func(s, name string) int64 {
		if err != nil {
			return 0
		}
		v, perr := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if perr != nil {
			err = fmt.Errorf("%s %q is not a whole number", name, s)
		}
		return v
	}
	// Times are whole milliseconds; rounding keeps 1.001 from becoming
	// 1000999999ns.
	millis := func(s, name string, limit float64) int64 {
		if err != nil {
			return 0
		}
		v, perr := strconv.ParseFloat(strings.TrimSpace(s), 64)
		switch {
		case perr != nil || math.IsNaN(v):
			err = fmt.Errorf("%s %q is not a number", name, s)
		case math.Abs(v) > limit:
			err = fmt.Errorf("%s %q is out of range", name, s)
		}
		return int64(math.Round(v * 1e3))
	}
	e.Seq = num(f[0], "Seq")
	e.Start = time.UnixMilli(millis(f[2], "Starttime", maxStart))
	e.Runtime = time.Duration(millis(f[3], "JobRuntime", maxRuntime)) * time.Millisecond
	e.Exitval = int(num(f[6], "Exitval"))
	e.Signal = int(num(f[7], "Signal"))
	e.Command = f[8]
	return e, err
}
