package prometheus_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/crewgo/crew"
	crewprom "github.com/crewgo/crew/metrics/prometheus"
	"github.com/crewgo/crew/pool"
	"github.com/crewgo/crew/queue"
)

// TestGrafanaDashboardQueriesOnlyMetricsTheCollectorsExport keeps the
// ready-made dashboard in step with the collectors: every crew_* name in
// its queries must be one they register, and each of them must be shown.
func TestGrafanaDashboardQueriesOnlyMetricsTheCollectorsExport(t *testing.T) {
	raw, err := os.ReadFile("grafana/crew.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana/crew.json: %v", err)
	}

	g := &crew.Group{}
	g.Add("w", crew.Func(func(ctx context.Context) error { return nil }))
	reg := prom.NewRegistry()
	reg.MustRegister(
		crewprom.NewConsumerCollector("q", &queue.Consumer{}),
		crewprom.NewDepthCollector("q", func(context.Context) (crewprom.Depth, error) { return crewprom.Depth{}, nil }),
		crewprom.NewPoolCollector("p", pool.New(1)),
		crewprom.NewGroupCollector("g", g),
	)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}

	used := map[string]bool{}
	name := regexp.MustCompile(`crew_[a-z_]+`)
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, n := range name.FindAllString(target.Expr, -1) {
				base := strings.TrimSuffix(n, "_bucket")
				if !exported[base] {
					t.Errorf("panel %q queries %s, which no collector exports", p.Title, n)
				}
				used[base] = true
			}
		}
	}
	for n := range exported {
		if !used[n] {
			t.Errorf("the dashboard does not show %s", n)
		}
	}
}
