package batch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/batch"
)

// A reconciliation job: check every payment against a partner whose API
// fails now and then, at most four requests at once, retrying what is worth
// retrying, and finishing well before the job's deadline.
func Example_reconcile() {
	errUnavailable := errors.New("503 service unavailable")
	var calls sync32
	check := func(ctx context.Context, i int, id string) error {
		if id == "pay-3" && calls.inc(id) < 3 {
			return errUnavailable // transient: succeeds on the third try
		}
		if id == "pay-5" {
			return errors.New("404 unknown payment") // permanent
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	payments := []string{"pay-1", "pay-2", "pay-3", "pay-4", "pay-5"}
	rep, err := batch.Each(ctx, payments, check,
		batch.Workers(4),
		batch.ItemTimeout(5*time.Second),
		batch.Retry(3, backoff.Constant(time.Millisecond), func(err error) bool {
			return errors.Is(err, errUnavailable)
		}),
		batch.Margin(10*time.Second),
	)
	for i, o := range rep.Items {
		fmt.Printf("%s: %v after %d attempt(s)\n", payments[i], o.Status, o.Attempts)
	}
	fmt.Printf("%d succeeded, %d failed, %d skipped\n", rep.Succeeded, rep.Failed, rep.Skipped)
	fmt.Println(err)
	// Output:
	// pay-1: succeeded after 1 attempt(s)
	// pay-2: succeeded after 1 attempt(s)
	// pay-3: succeeded after 3 attempt(s)
	// pay-4: succeeded after 1 attempt(s)
	// pay-5: failed after 1 attempt(s)
	// 4 succeeded, 1 failed, 0 skipped
	// item 4: 404 unknown payment
}

// sync32 counts calls per key, safely from several goroutines.
type sync32 struct{ m [8]atomic.Int32 }

func (s *sync32) inc(key string) int32 { return s.m[len(key)%8].Add(1) }

func ExampleMap() {
	words := []string{"batch", "of", "work"}
	rep, err := batch.Map(context.Background(), words, func(ctx context.Context, i int, w string) (int, error) {
		return len(w), nil
	})
	if err != nil {
		fmt.Println(err)
	}
	for i, o := range rep.Items { // Items[i] belongs to words[i]
		fmt.Println(words[i], o.Value)
	}
	// Output:
	// batch 5
	// of 2
	// work 4
}

func ExampleEach() {
	amounts := []int{10, -5, 30, -1}
	rep, err := batch.Each(context.Background(), amounts, func(ctx context.Context, i, amount int) error {
		if amount < 0 {
			return fmt.Errorf("negative amount %d", amount)
		}
		return nil
	})
	fmt.Println(rep.Succeeded, "succeeded,", rep.Failed, "failed")
	fmt.Println(err) // every failure, each with its index
	// Output:
	// 2 succeeded, 2 failed
	// item 1: negative amount -5
	// item 3: negative amount -1
}

func ExampleMapSeq() {
	words := slices.Values([]string{"stream", "of", "many", "words"})
	for i, o := range batch.MapSeq(context.Background(), words, func(ctx context.Context, i int, w string) (string, error) {
		return strings.ToUpper(w), nil
	}, batch.Workers(3)) {
		fmt.Println(i, o.Value) // in input order, whatever order they finished in
	}
	// Output:
	// 0 STREAM
	// 1 OF
	// 2 MANY
	// 3 WORDS
}

func ExampleEachSeq() {
	text := "first line\nsecond line\n\nfourth line\n"
	var words atomic.Int64
	rep, err := batch.EachSeq(context.Background(), strings.Lines(text), func(ctx context.Context, i int, line string) error {
		if strings.TrimSpace(line) == "" {
			return errors.New("empty line")
		}
		words.Add(int64(len(strings.Fields(line))))
		return nil
	}, batch.Workers(2))
	fmt.Println(rep.Succeeded, "lines,", words.Load(), "words")
	fmt.Println(err)
	// Output:
	// 3 lines, 6 words
	// item 2: empty line
}

func ExampleWorkers() {
	var running, most atomic.Int32
	batch.Each(context.Background(), make([]int, 100), func(ctx context.Context, i, _ int) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(time.Millisecond)
		return nil
	}, batch.Workers(3))
	fmt.Println("at most 3 at once:", most.Load() <= 3)
	// Output: at most 3 at once: true
}

func ExampleRate() {
	start := time.Now()
	rep, _ := batch.Each(context.Background(), make([]int, 5), func(ctx context.Context, i, _ int) error {
		return nil
	}, batch.Rate(rate.Every(10*time.Millisecond), 1))
	// One attempt at once, then one every 10ms.
	fmt.Println(rep.Succeeded, "calls, taking at least 40ms:", time.Since(start) >= 40*time.Millisecond)
	// Output: 5 calls, taking at least 40ms: true
}

func ExampleRate_deadline() {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rep, err := batch.Each(ctx, make([]int, 3), func(ctx context.Context, i, _ int) error {
		return nil
	}, batch.Rate(rate.Every(time.Hour), 1))
	// The second call would wait an hour: it is skipped at once instead.
	fmt.Println(rep.Succeeded, "succeeded,", rep.Skipped, "skipped")
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output:
	// 1 succeeded, 2 skipped
	// true
}

func ExampleLimiter() {
	// One budget for everything that calls the partner's API.
	partner := rate.NewLimiter(rate.Every(5*time.Millisecond), 2)
	for _, job := range []string{"refunds", "payouts"} {
		rep, _ := batch.Each(context.Background(), make([]int, 4), func(ctx context.Context, i, _ int) error {
			return nil
		}, batch.Limiter(partner))
		fmt.Println(job, rep.Succeeded)
	}
	// Output:
	// refunds 4
	// payouts 4
}

func ExampleItemTimeout() {
	rep, _ := batch.Each(context.Background(), []string{"slow"}, func(ctx context.Context, i int, _ string) error {
		select {
		case <-time.After(time.Hour):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, batch.ItemTimeout(10*time.Millisecond))
	fmt.Println(rep.Items[0].Status, rep.Items[0].Err)
	// Output: failed context deadline exceeded
}

func ExampleRetry() {
	errBusy := errors.New("429 too many requests")
	tries := 0
	rep, err := batch.Each(context.Background(), []string{"pay-1"}, func(ctx context.Context, i int, _ string) error {
		tries++
		if tries < 3 {
			return errBusy
		}
		return nil
	}, batch.Retry(5, backoff.Exponential(time.Millisecond, 10*time.Millisecond), func(err error) bool {
		return errors.Is(err, errBusy)
	}))
	fmt.Println(rep.Items[0].Status, "after", rep.Items[0].Attempts, "attempts;", err)
	// Output: succeeded after 3 attempts; <nil>
}

func ExampleStopOnError() {
	rep, err := batch.Each(context.Background(), []int{1, 2, 0, 4, 5}, func(ctx context.Context, i, n int) error {
		if n == 0 {
			return errors.New("zero")
		}
		return nil
	}, batch.Workers(1), batch.StopOnError())
	var statuses []string
	for _, o := range rep.Items {
		statuses = append(statuses, o.Status.String())
	}
	fmt.Println(strings.Join(statuses, " "))
	fmt.Println(err)
	// Output:
	// succeeded succeeded failed skipped skipped
	// item 2: zero
}

func ExampleMaxErrors() {
	rep, _ := batch.Each(context.Background(), make([]int, 10), func(ctx context.Context, i, _ int) error {
		return errors.New("partner is down")
	}, batch.Workers(1), batch.MaxErrors(3))
	fmt.Println(rep.Failed, "failed,", rep.Skipped, "skipped")
	// Output: 3 failed, 7 skipped
}

func ExampleMargin() {
	// The job must be done within a second, and keeps two for itself: no
	// item may start.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rep, err := batch.Each(ctx, []string{"pay-1", "pay-2"}, func(ctx context.Context, i int, _ string) error {
		return nil
	}, batch.Margin(2*time.Second))
	fmt.Println(rep.Skipped, "skipped")
	fmt.Println(rep.Items[0].Err)
	fmt.Println(errors.Is(err, context.DeadlineExceeded), errors.Is(rep.Items[0].Err, batch.ErrSkipped))
	// Output:
	// 2 skipped
	// batch: item skipped: less than the 2s margin left before the deadline: context deadline exceeded
	// true true
}

func ExampleOnProgress() {
	batch.Each(context.Background(), make([]int, 3), func(ctx context.Context, i, _ int) error {
		return nil
	}, batch.Workers(1), batch.OnProgress(func(p batch.Progress) {
		fmt.Printf("%d/%d done\n", p.Done, p.Total)
	}))
	// Output:
	// 1/3 done
	// 2/3 done
	// 3/3 done
}

func ExampleItemError() {
	_, err := batch.Each(context.Background(), []string{"a", "", "c"}, func(ctx context.Context, i int, s string) error {
		if s == "" {
			return errors.New("empty")
		}
		return nil
	})
	var ie *batch.ItemError
	if errors.As(err, &ie) {
		fmt.Println("first failure: item", ie.Index, "-", ie.Err)
	}
	// Output: first failure: item 1 - empty
}

func ExampleStatus() {
	ctx, cancel := context.WithCancel(context.Background())
	rep, _ := batch.Each(ctx, []int{1, 2, 3}, func(ctx context.Context, i, _ int) error {
		if i == 0 {
			cancel()
			return nil
		}
		return nil
	}, batch.Workers(1))
	for i, o := range rep.Items {
		fmt.Println(i, o.Status, o.Attempts)
	}
	// Output:
	// 0 succeeded 1
	// 1 skipped 0
	// 2 skipped 0
}
