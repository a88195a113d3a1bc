package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// queueStats is one queue's line of crew stats, and its JSON form.
type queueStats struct {
	Name    string `json:"name"`
	Ready   int    `json:"ready"`
	Leased  int    `json:"leased"`
	Delayed int    `json:"delayed"`
	Dead    int    `json:"dead"`
}

func (a *app) statsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats [flags]",
		Short: "Count the messages of each queue by state",
		Long: `Stats counts the messages of every queue in the store that --queue names
(the queue it selects is always listed, even when empty):

  ready    can be received now
  leased   being handled by a worker (or by one that died, until its lease ends)
  delayed  published with --delay, or waiting out a retry's backoff
  dead     dead letters: see crew dead`,
		Example: `  crew stats
  crew stats --json --queue sqlite://jobs.db`,
		Args: cobra.NoArgs,
	}
	queueURL := a.queueFlag(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"queues":[{"name":...,"ready":...,"leased":...,"delayed":...,"dead":...}]}`)
	cmd.RunE = a.runE(func(cmd *cobra.Command, _ []string) error {
		q, err := openQueue(cmd.Context(), queueURL(), false)
		if err != nil {
			return err
		}
		defer q.Close()
		ctx := cmd.Context()
		names, err := q.Queues(ctx)
		if err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		if !slices.Contains(names, q.Name()) {
			names = append(names, q.Name())
			slices.Sort(names)
		}
		all := make([]queueStats, 0, len(names))
		for _, name := range names {
			s, err := q.Stats(ctx, name)
			if err != nil {
				return fmt.Errorf("stats of queue %q: %w", name, err)
			}
			all = append(all, queueStats{Name: name, Ready: s.Ready, Leased: s.Leased, Delayed: s.Delayed, Dead: s.Dead})
		}
		if asJSON {
			return json.NewEncoder(a.stdout).Encode(struct {
				Queues []queueStats `json:"queues"`
			}{all})
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "QUEUE\tREADY\tLEASED\tDELAYED\tDEAD")
		for _, s := range all {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", s.Name, s.Ready, s.Leased, s.Delayed, s.Dead)
		}
		return tw.Flush()
	})
	return cmd
}
