package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/crewgo/crew/queue"
)

func (a *app) deadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "Inspect, requeue and delete dead letters",
		Long: `A message becomes a dead letter when its command failed on every one of
its --max-attempts deliveries. Dead letters stay in the store, out of the
queue, until they are redriven (made ready again, for another round of
attempts) or purged.`,
		Example: `  crew dead list
  crew dead redrive 42 43
  crew dead redrive --all
  crew dead purge`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(*cobra.Command, []string) error {
			return usagef("missing subcommand: list, redrive or purge")
		}),
	}
	cmd.AddCommand(a.deadListCmd(), a.deadRedriveCmd(), a.deadPurgeCmd())
	return cmd
}

// deadLetter is the JSON form of one dead letter. The body is in
// body_base64, always, byte for byte; and in body as well, for reading,
// when it is valid UTF-8 (JSON strings cannot hold other bytes).
type deadLetter struct {
	ID         string    `json:"id"`
	Attempts   int       `json:"attempts"`
	At         time.Time `json:"at"`
	Reason     string    `json:"reason"`
	Body       *string   `json:"body,omitempty"`
	BodyBase64 []byte    `json:"body_base64"`
}

func newDeadLetter(d queue.DeadMessage) deadLetter {
	out := deadLetter{
		ID: d.Message.ID, Attempts: d.Message.Attempt, At: d.At.UTC(), Reason: d.Reason,
		BodyBase64: d.Message.Body,
	}
	if out.BodyBase64 == nil {
		out.BodyBase64 = []byte{} // "", not null
	}
	if utf8.Valid(d.Message.Body) {
		body := string(d.Message.Body)
		out.Body = &body
	}
	return out
}

func (a *app) deadListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List the dead letters of a queue, oldest first",
		Long: `List prints one dead letter per line: its ID, how often it was delivered,
when it was given up, why (the last failure), and the start of its body.
--json prints every field in full, as a JSON array of objects: id,
attempts, at (RFC 3339, UTC), reason, body_base64 (the body, byte for
byte, in standard base64) and, when the body is valid UTF-8, body (the
same body as a JSON string).`,
		Args: cobra.NoArgs,
	}
	queueURL := a.queueFlag(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {id, attempts, at, reason, body_base64, body (when UTF-8)}")
	cmd.RunE = a.runE(func(cmd *cobra.Command, _ []string) error {
		q, err := openQueue(cmd.Context(), queueURL(), false)
		if err != nil {
			return err
		}
		defer q.Close()
		dead, err := q.Dead(cmd.Context())
		if err != nil {
			return fmt.Errorf("dead list: %w", err)
		}
		if asJSON {
			out := make([]deadLetter, len(dead))
			for i, d := range dead {
				out[i] = newDeadLetter(d)
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tATTEMPTS\tDEAD SINCE\tREASON\tBODY")
		for _, d := range dead {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", d.Message.ID, d.Message.Attempt,
				d.At.UTC().Format(time.RFC3339), clip(d.Reason, 40), clip(string(d.Message.Body), 60))
		}
		return tw.Flush()
	})
	return cmd
}

// clip shortens s to at most n characters for a one-line listing, quoting it
// if it holds tabs, newlines or other control characters.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n-1]) + "…"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}

func (a *app) deadRedriveCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "redrive [flags] (--all | ID...)",
		Short: "Make dead letters ready again",
		Long: `Redrive moves the named dead letters (or, with --all, every dead letter of the
queue) back into the queue, ready now, for a fresh round of --max-attempts
deliveries. It prints how many it moved; an ID that is not a dead letter of
the queue is not an error, it just does not count.`,
		Example: `  crew dead redrive 42 43
  crew dead redrive --all`,
	}
	queueURL := a.queueFlag(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "redrive every dead letter of the queue")
	cmd.RunE = a.runE(func(cmd *cobra.Command, ids []string) error {
		switch {
		case all && len(ids) > 0:
			return usagef("give either --all or message IDs, not both")
		case !all && len(ids) == 0:
			return usagef("missing message IDs: name the dead letters to redrive, or use --all")
		}
		q, err := openQueue(cmd.Context(), queueURL(), false)
		if err != nil {
			return err
		}
		defer q.Close()
		n, err := q.Redrive(cmd.Context(), ids...)
		if err != nil {
			return fmt.Errorf("dead redrive: %w", err)
		}
		fmt.Fprintf(a.stdout, "redriven: %d\n", n)
		return nil
	})
	return cmd
}

func (a *app) deadPurgeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "purge [flags]",
		Short: "Delete every dead letter of a queue",
		Long:  `Purge deletes every dead letter of the queue for good, and prints how many.`,
		Args:  cobra.NoArgs,
	}
	queueURL := a.queueFlag(cmd)
	cmd.RunE = a.runE(func(cmd *cobra.Command, _ []string) error {
		q, err := openQueue(cmd.Context(), queueURL(), false)
		if err != nil {
			return err
		}
		defer q.Close()
		n, err := q.Purge(cmd.Context())
		if err != nil {
			return fmt.Errorf("dead purge: %w", err)
		}
		fmt.Fprintf(a.stdout, "purged: %d\n", n)
		return nil
	})
	return cmd
}
