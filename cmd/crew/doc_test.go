package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The package doc, which go doc shows, names every command and every flag
// that the help shows, so that a new flag cannot leave it behind.
func TestDocNamesEveryCommandAndFlag(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src)
	var visit func(cmd *cobra.Command)
	visit = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			if !strings.Contains(doc, sub.CommandPath()) && !strings.Contains(doc, " "+sub.Name()+" ") {
				t.Errorf("doc.go does not name %q", sub.CommandPath())
			}
			sub.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if f.Hidden || f.Name == "help" {
					return
				}
				if !strings.Contains(doc, "--"+f.Name) && (f.Shorthand == "" || !strings.Contains(doc, "-"+f.Shorthand+" ")) {
					t.Errorf("doc.go does not name %s's flag --%s", sub.CommandPath(), f.Name)
				}
			})
			visit(sub)
		}
	}
	visit((&app{}).rootCmd())
}
