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
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
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
	cmd := strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, e.Command)
	start := float64(e.Start.UnixMilli()) / 1e3
	return fmt.Sprintf("%d\t:\t%.3f\t%8.3f\t0\t0\t%d\t%d\t%s\n",
		e.Seq, start, e.Runtime.Seconds(), e.Exitval, e.Signal, cmd)
}

// Writer appends entries to a job log file. It is safe for concurrent use;
// each entry is written with one write call to a file opened for appending,
// so that a crash leaves whole lines behind.
type Writer struct {
	mu sync.Mutex
	f  *os.File
}

// Create opens the job log at path for writing. With resume it appends to
// what the file holds (writing the header only if the file is new or
// empty); without it, it starts the file afresh.
func Create(path string, resume bool) (*Writer, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if !resume {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil && resume && size > 0 {
		size, err = dropPartialLine(f, size)
	}
	if err == nil && size == 0 {
		_, err = io.WriteString(f, Header)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Writer{f: f}, nil
}

// dropPartialLine truncates a log that a crash left with half a line at its
// end, so that the next entry starts a line of its own.
// It returns the file's new size.
func dropPartialLine(f *os.File, size int64) (int64, error) {
	data, err := os.ReadFile(f.Name())
	if err != nil {
		return 0, err
	}
	data = data[:min(int64(len(data)), size)]
	if len(data) == 0 || data[len(data)-1] == '\n' {
		return int64(len(data)), nil
	}
	size = int64(strings.LastIndexByte(string(data), '\n') + 1)
	return size, f.Truncate(size)
}

// Write appends e to the log.
func (w *Writer) Write(e Entry) error {
	line := e.String()
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := io.WriteString(w.f, line)
	return err
}

// Close closes the file.
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
	sec := func(s, name string) float64 {
		if err != nil {
			return 0
		}
		v, perr := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if perr != nil {
			err = fmt.Errorf("%s %q is not a number", name, s)
		}
		return v
	}
	e.Seq = num(f[0], "Seq")
	e.Start = time.UnixMilli(int64(sec(f[2], "Starttime") * 1e3))
	e.Runtime = time.Duration(sec(f[3], "JobRuntime") * float64(time.Second))
	e.Exitval = int(num(f[6], "Exitval"))
	e.Signal = int(num(f[7], "Signal"))
	e.Command = f[8]
	return e, err
}

// DoneSeqs reads the job log at path and returns the Seq numbers of the jobs
// it records as succeeded. A log that does not exist yet records none.
func DoneSeqs(path string) (map[int64]bool, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[int64]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("job log %s: %w", path, err)
	}
	done := make(map[int64]bool, len(entries))
	for _, e := range entries {
		if e.Done() {
			done[e.Seq] = true
		}
	}
	return done, nil
}
