package work_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew/work"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

//go:noinline
func explode() { panic("boom") }

func TestCatchReturnsThePanicWithTheStackWhereItHappened(t *testing.T) {
	pe := work.Catch(explode)
	if pe == nil {
		t.Fatal("Catch = nil, want the panic")
	}
	if pe.Value != "boom" {
		t.Errorf("Value = %v, want boom", pe.Value)
	}
	if !strings.Contains(string(pe.Stack), "work_test.explode") {
		t.Errorf("stack does not show the panicking function:\n%s", pe.Stack)
	}
	if !strings.HasPrefix(pe.Error(), "panic: boom\n\n") {
		t.Errorf("Error = %q, want the value then the stack", pe.Error())
	}
}

func TestCatchReturnsNilWhenFnReturns(t *testing.T) {
	ran := false
	if pe := work.Catch(func() { ran = true }); pe != nil || !ran {
		t.Fatalf("Catch = %v, ran = %v; want nil after running fn", pe, ran)
	}
}

func TestCatchRecoversPanicNil(t *testing.T) {
	pe := work.Catch(func() { panic(nil) })
	var pn *runtime.PanicNilError
	if pe == nil || !errors.As(pe, &pn) {
		t.Fatalf("Catch(panic(nil)) = %v, want a PanicError holding a *runtime.PanicNilError", pe)
	}
}

func TestCatchDoesNotStopGoexit(t *testing.T) {
	returned := make(chan bool, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				t.Errorf("recovered %v after Goexit", v)
			}
		}()
		ok := true
		defer func() { returned <- !ok }()
		work.Catch(runtime.Goexit)
		ok = false // not reached: Goexit unwinds through Catch
	}()
	if <-returned {
		t.Fatal("Catch returned after runtime.Goexit")
	}
}

func TestPanicErrorUnwrapsAnErrorValue(t *testing.T) {
	sentinel := errors.New("sentinel")
	pe := work.Catch(func() { panic(sentinel) })
	if !errors.Is(pe, sentinel) {
		t.Errorf("errors.Is(%v, sentinel) = false", pe)
	}
	if pe := work.Catch(func() { panic(42) }); pe.Unwrap() != nil {
		t.Errorf("Unwrap of a non-error value = %v, want nil", pe.Unwrap())
	}
}

func TestErrPermanentIsFoundThroughWrapping(t *testing.T) {
	err := errors.Join(errors.New("other"), wrap(work.ErrPermanent))
	if !errors.Is(err, work.ErrPermanent) {
		t.Fatal("errors.Is does not find a wrapped ErrPermanent")
	}
}

func wrap(err error) error { return &wrapped{err} }

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "bad input: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

func TestDrainContextWithoutADrainNeverEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := work.DrainContext(ctx)
	if d.Err() != nil || d.Done() != nil {
		t.Fatalf("Err=%v Done=%v, want a context that never ends", d.Err(), d.Done())
	}
	if _, ok := d.Deadline(); ok {
		t.Error("a DrainContext without a drain has a deadline")
	}
}

func TestDrainContextEndsWithTheDrainNotWithCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type key struct{}
		drain, endDrain := context.WithTimeout(context.Background(), 5*time.Second)
		defer endDrain()
		ctx, cancel := context.WithCancel(work.WithDrain(context.WithValue(context.Background(), key{}, "v"), drain))
		cancel()
		d := work.DrainContext(ctx)
		if d.Err() != nil {
			t.Fatalf("Err = %v right after ctx's cancellation, want nil", d.Err())
		}
		if got := d.Value(key{}); got != "v" {
			t.Errorf("Value = %v, want ctx's value", got)
		}
		want, _ := drain.Deadline()
		if dl, ok := d.Deadline(); !ok || !dl.Equal(want) {
			t.Errorf("Deadline = %v %v, want the drain's %v", dl, ok, want)
		}
		start := time.Now()
		<-d.Done()
		if waited := time.Since(start); waited != 5*time.Second {
			t.Errorf("ended after %v, want the drain's 5s", waited)
		}
		if !errors.Is(d.Err(), context.DeadlineExceeded) {
			t.Errorf("Err = %v, want the drain's DeadlineExceeded", d.Err())
		}
	})
}

func TestInnermostDrainWins(t *testing.T) {
	outer, endOuter := context.WithCancel(context.Background())
	defer endOuter()
	inner, endInner := context.WithCancel(context.Background())
	ctx := work.WithDrain(work.WithDrain(context.Background(), outer), inner)
	endInner()
	if err := work.DrainContext(ctx).Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err = %v, want the inner drain's end", err)
	}
	if d := work.DrainContext(work.DrainContext(ctx)); d.Err() == nil {
		t.Fatal("a DrainContext of a DrainContext lost the drain")
	}
}

// watchedDrain is a drain that records whether the context package watched
// it through its AfterFunc method rather than with a goroutine.
type watchedDrain struct {
	context.Context
	mu      sync.Mutex
	watched int
}

// Value hides the embedded cancelCtx, which the context package would
// otherwise watch directly.
func (d *watchedDrain) Value(any) any { return nil }

func (d *watchedDrain) AfterFunc(f func()) func() bool {
	d.mu.Lock()
	d.watched++
	d.mu.Unlock()
	return context.AfterFunc(d.Context, f)
}

func TestDerivedDrainContextsUseTheDrainsAfterFunc(t *testing.T) {
	base, end := context.WithCancel(context.Background())
	drain := &watchedDrain{Context: base}
	child, cancel := context.WithCancel(work.DrainContext(work.WithDrain(context.Background(), drain)))
	defer cancel()
	drain.mu.Lock()
	watched := drain.watched
	drain.mu.Unlock()
	if watched != 1 {
		t.Fatalf("the drain's AfterFunc was called %d times, want 1", watched)
	}
	end()
	<-child.Done() // the child ends with the drain
}
