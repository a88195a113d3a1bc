package runner

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPrefixLinesPrefixesEveryLineAndALastPartOne(t *testing.T) {
	for in, want := range map[string]string{
		"":          "",
		"a\n":       "p\ta\n",
		"a\nb\n":    "p\ta\np\tb\n",
		"a\n\nb":    "p\ta\np\t\np\tb",
		"only part": "p\tonly part",
	} {
		if got := string(prefixLines([]byte("p\t"), []byte(in))); got != want {
			t.Errorf("prefixLines(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPrinterKeepsInputOrder ends jobs in the order 2, 0, 3, 1 and checks
// that their output comes out as 0, 1, 2, 3, the head's output printed
// as it comes.
func TestPrinterKeepsInputOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := newPrinter(Config{Stdout: f, KeepOrder: true, Jobs: 4})
	jobs := make([]*jobOutput, 4)
	for i := range jobs {
		if err := p.reserve(t.Context()); err != nil {
			t.Fatal(err)
		}
		jobs[i] = &jobOutput{ord: int64(i)}
	}
	printed := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	p.write(jobs[2], stdoutIdx, []byte("two\n"))
	p.end(jobs[2])
	p.write(jobs[0], stdoutIdx, []byte("zero "))
	if got := printed(); got != "zero " {
		t.Fatalf("the head's output: printed %q, want %q at once", got, "zero ")
	}
	p.write(jobs[0], stdoutIdx, []byte("done\n"))
	p.write(jobs[1], stdoutIdx, []byte("one\n"))
	p.end(jobs[0])
	if got := printed(); got != "zero done\none\n" {
		t.Fatalf("after job 0 ended: printed %q", got)
	}
	p.write(jobs[3], stdoutIdx, []byte("three\n"))
	p.end(jobs[3])
	p.end(jobs[1])
	if got, want := printed(), "zero done\none\ntwo\nthree\n"; got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
	if len(p.waiting) != 0 || len(p.ahead) != 0 {
		t.Errorf("after every job ended: %d waiting, %d reserved", len(p.waiting), len(p.ahead))
	}
}
