package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crewgo/crew/queue"
)

func (a *app) enqueueCmd() *cobra.Command {
	var (
		delay    time.Duration
		priority int
		attrs    []string
	)
	cmd := &cobra.Command{
		Use:   "enqueue [flags] [BODY...]",
		Short: "Add messages to a queue",
		Long: `Enqueue adds one message per BODY argument or, when there is none, one
message per line of standard input, and prints each message's ID on a line
of its own. Each --attr KEY=VALUE gives every message an attribute, which
crew work hands to its command as CREW_ATTR_<KEY> and uses for --key.
When TRACEPARENT (and TRACESTATE) hold a W3C trace context, each message
carries it, and crew work hands it on.`,
		Example: `  crew enqueue 'resize 1.jpg' 'resize 2.jpg'
  ls *.jpg | crew enqueue --priority 5
  crew enqueue --delay 10m 'send the reminder'
  crew enqueue --attr tenant=acme --attr kind=invoice 'invoice 42'
  crew enqueue --queue 'sqlite://jobs.db?queue=emails' alice@example.com`,
	}
	queueURL := a.queueFlag(cmd)
	cmd.Flags().DurationVar(&delay, "delay", 0, "make the messages ready only after `D`, such as 90s or 10m")
	cmd.Flags().IntVar(&priority, "priority", 0, "priority `N`: higher is received first")
	cmd.Flags().StringArrayVar(&attrs, "attr", nil, "give the messages the attribute `KEY=VALUE` (repeatable)")
	cmd.RunE = a.runE(func(cmd *cobra.Command, args []string) error {
		if delay < 0 {
			return usagef("--delay must not be negative, not %v", delay)
		}
		attrOpts, err := attrOptions(attrs)
		if err != nil {
			return err
		}
		q, err := openQueue(cmd.Context(), queueURL(), true)
		if err != nil {
			return err
		}
		defer q.Close()
		ctx := cmd.Context()
		opts := append([]queue.PublishOption{queue.Delay(delay), queue.Priority(priority)}, attrOpts...)
		opts = append(opts, traceOptions(a.getenv)...) // trace.go: TRACEPARENT, TRACESTATE
		out := bufio.NewWriter(a.stdout)
		defer out.Flush()
		publish := func(body string) error {
			id, err := q.Publish(ctx, []byte(body), opts...)
			if err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			fmt.Fprintln(out, id)
			return nil
		}
		if len(args) > 0 {
			for _, body := range args {
				if err := publish(body); err != nil {
					return err
				}
			}
			return nil
		}
		return eachLine(ctx, a.stdin, func(line string) error {
			err := publish(line)
			// Print each ID as it is known, for a consumer reading along.
			out.Flush()
			return err
		})
	})
	return cmd
}

// attrOptions turns --attr KEY=VALUE flags into PublishOptions. A key must
// not be empty, nor given twice.
func attrOptions(attrs []string) ([]queue.PublishOption, error) {
	seen := make(map[string]bool, len(attrs))
	opts := make([]queue.PublishOption, 0, len(attrs))
	for _, kv := range attrs {
		key, value, ok := strings.Cut(kv, "=")
		switch {
		case !ok || key == "":
			return nil, usagef("--attr wants KEY=VALUE, not %q", kv)
		case seen[key]:
			return nil, usagef("--attr %s is given twice", key)
		}
		seen[key] = true
		opts = append(opts, queue.Attribute(key, value))
	}
	return opts, nil
}

// eachLine calls f with every line of r, without its line ending. A last line
// without a newline counts; an empty input has no lines.
func eachLine(ctx context.Context, r io.Reader, f func(line string) error) error {
	br := bufio.NewReader(r)
	for ctx.Err() == nil {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if ferr := f(line); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read standard input: %w", err)
		}
	}
	return ctx.Err()
}
