package runner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"sync"
)

// Output says how the jobs' output reaches the runner's.
type Output int

const (
	// Grouped prints each job's standard output, then its standard error,
	// whole, once the job has ended, so that the output of jobs running
	// at once is never mixed. A job's output waits in temporary files
	// meanwhile, as with GNU parallel's --group.
	Grouped Output = iota
	// LineBuffered prints whole lines as jobs write them: lines of jobs
	// running at once may alternate, but a line is never cut by another
	// job's line. A last line without a newline is printed when the job
	// ends. As GNU parallel's --line-buffer.
	LineBuffered
)

// stdoutIdx and stderrIdx index a job's two output streams.
const (
	stdoutIdx = iota
	stderrIdx
)

// printer writes the jobs' output to the runner's, one job's piece at a
// time. With keepOrder it prints the jobs in input order: the job at the
// head of the order prints as it goes, the jobs after it hold their output
// until the jobs before them have ended.
type printer struct {
	mu        sync.Mutex
	out       [2]*os.File // nil discards
	keepOrder bool
	tag       bool

	// With keepOrder:
	head    int64                // the first job not yet ended and printed
	waiting map[int64]*jobOutput // jobs after head with output held, or ended
	// ahead bounds how far past head the runner may start jobs, and so the
	// output that waits in memory behind a slow job.
	ahead chan struct{}
}

// keepOrderWindow is how many jobs past a running one, at most, may start
// with --keep-order (beyond the job slots).
const keepOrderWindow = 1024

func newPrinter(cfg Config) *printer {
	p := &printer{out: [2]*os.File{cfg.Stdout, cfg.Stderr}, keepOrder: cfg.KeepOrder, tag: cfg.Tag}
	if p.keepOrder {
		p.waiting = make(map[int64]*jobOutput)
		p.ahead = make(chan struct{}, keepOrderWindow+cfg.Jobs)
	}
	return p
}

// jobOutput is one job's place in the printer.
type jobOutput struct {
	ord    int64  // the job's place in the order of jobs started, from 0
	prefix []byte // with tag: the job's input line and a tab
	held   [2]bytes.Buffer
	ended  bool
}

// reserve waits, with keepOrder, until the job after the last one may
// start. It fails only when ctx ends first.
func (p *printer) reserve(ctx context.Context) error {
	if !p.keepOrder {
		return nil
	}
	select {
	case p.ahead <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// write prints data, part of job j's output on stream i, or holds it until
// j's turn comes.
func (p *printer) write(j *jobOutput, i int, data []byte) {
	if p.out[i] == nil || len(data) == 0 {
		return
	}
	if p.tag {
		data = prefixLines(j.prefix, data)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holdLocked(j) {
		j.held[i].Write(data)
		return
	}
	_, _ = p.out[i].Write(data)
}

// printFiles prints job j's whole output, the files of its standard
// output and error, or holds it until j's turn comes. Both are printed at
// once, so that no other job's output comes between them. Untagged output
// in its turn is copied file to file without passing through memory.
func (p *printer) printFiles(j *jobOutput, files [2]*os.File) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	hold := p.holdLocked(j)
	var errs []error
	for i, f := range files {
		if f == nil || p.out[i] == nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() == 0 {
			errs = append(errs, err)
			continue
		}
		r := io.NewSectionReader(f, 0, fi.Size())
		if !hold && !p.tag {
			_, err := io.Copy(p.out[i], r)
			errs = append(errs, ignoreOutputErr(err))
			continue
		}
		data, err := io.ReadAll(r)
		errs = append(errs, err)
		if p.tag {
			data = prefixLines(j.prefix, data)
		}
		if hold {
			j.held[i].Write(data)
		} else {
			_, _ = p.out[i].Write(data)
		}
	}
	return errors.Join(errs...)
}

// ignoreOutputErr drops the errors of writing to the runner's own output:
// as with xargs, a closed or full output is the reader's business, not a
// failure of the job.
func ignoreOutputErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Op == "write" {
		return nil
	}
	return err
}

// holdLocked reports whether j's output must wait for j's turn, and if so
// makes sure the printer knows where to find it.
func (p *printer) holdLocked(j *jobOutput) bool {
	if !p.keepOrder || j.ord == p.head {
		return false
	}
	p.waiting[j.ord] = j
	return true
}

// end says that j has ended and written all of its output. With
// keepOrder, if j was the head, the jobs after it that have ended are
// printed, and the next one still running becomes the head.
func (p *printer) end(j *jobOutput) {
	if !p.keepOrder {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	j.ended = true
	if j.ord != p.head {
		p.waiting[j.ord] = j
		return
	}
	for {
		delete(p.waiting, p.head)
		p.head++
		<-p.ahead
		next := p.waiting[p.head]
		if next == nil {
			return
		}
		for i, b := range &next.held {
			if p.out[i] != nil && b.Len() > 0 {
				_, _ = p.out[i].Write(b.Bytes())
			}
			b.Reset()
		}
		if !next.ended {
			return
		}
	}
}

// message prints a line of the runner's own on the standard error, between
// the jobs' pieces of output.
func (p *printer) message(line string) {
	if p.out[stderrIdx] == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.out[stderrIdx], line)
}

// prefixLines returns data with prefix before each of its lines.
func prefixLines(prefix, data []byte) []byte {
	out := make([]byte, 0, len(data)+len(prefix)*(1+bytes.Count(data, []byte{'\n'})))
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
		}
		out = append(append(out, prefix...), line...)
		data = data[len(line):]
	}
	return out
}

// capture collects one job's output, over all its attempts, for the
// printer: the files to give the job's processes, and what to do once the
// last attempt has ended.
type capture struct {
	files [2]*os.File // the job's standard output and error; nil is /dev/null
	// done prints what capture has not printed yet and releases its files.
	done func() error
}

// newCapture prepares the capture of j's output in the runner's output
// mode.
func (p *printer) newCapture(j *jobOutput, mode Output) (*capture, error) {
	if mode == LineBuffered {
		return p.lineCapture(j)
	}
	return p.groupCapture(j)
}

// groupCapture gives the job a temporary file per output stream, and
// prints the files when the job ends.
func (p *printer) groupCapture(j *jobOutput) (*capture, error) {
	c := &capture{}
	for i := range c.files {
		if p.out[i] == nil {
			continue
		}
		f, err := tempFile()
		if err != nil {
			closeAll(c.files)
			return nil, err
		}
		c.files[i] = f
	}
	c.done = func() error {
		defer closeAll(c.files)
		err := p.printFiles(j, c.files)
		p.end(j)
		return err
	}
	return c, nil
}

// tempFile returns a new temporary file that has no name: it disappears
// with its last descriptor, even if crew is killed.
func tempFile() (*os.File, error) {
	f, err := os.CreateTemp("", "crew-run-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func closeAll(files [2]*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// lineCapture gives the job a pipe per output stream, and prints whole
// lines from them as they come.
func (p *printer) lineCapture(j *jobOutput) (*capture, error) {
	c := &capture{}
	var readers sync.WaitGroup
	var ends [2]*os.File
	for i := range c.files {
		if p.out[i] == nil {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(c.files)
			closeAll(ends)
			return nil, err
		}
		c.files[i], ends[i] = w, r
		readers.Go(func() {
			defer r.Close()
			p.copyLines(j, i, r)
		})
	}
	c.done = func() error {
		// The output ends when every process that holds it has closed it:
		// the job's, and ours here.
		closeAll(c.files)
		readers.Wait()
		p.end(j)
		return nil
	}
	return c, nil
}

// copyLines prints what r yields, as whole lines, until it ends: all the
// whole lines of a read at once, keeping a line's start until its end
// comes.
func (p *printer) copyLines(j *jobOutput, i int, r io.Reader) {
	buf := make([]byte, 0, 32<<10)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if k := bytes.LastIndexByte(buf, '\n'); k >= 0 {
			p.write(j, i, buf[:k+1])
			buf = append(buf[:0], buf[k+1:]...)
		}
		if err != nil {
			p.write(j, i, buf)
			return
		}
	}
}
