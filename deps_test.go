package crew_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The packages for concurrent work must not pull in the supervisor's HTTP and
// signal handling: a user who wants a pool should not get an HTTP stack.
func TestWorkPackagesImportNeitherNetHTTPNorOSSignal(t *testing.T) {
	goCmd, err := exec.LookPath("go") // go test puts its own GOROOT/bin first in PATH
	if err != nil {
		t.Fatal(err)
	}
	// Not queue/queuetest: its crash harness stops consumer processes with
	// signals, and only tests import it.
	pkgs := []string{"./work", "./pool", "./batch", "./wait", "./backoff", "./queue", "./queue/memqueue"}
	cmd := exec.Command(goCmd, append([]string{"list", "-deps"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "GOWORK=off") // the core module alone, whatever the other modules' state
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for dep := range strings.FieldsSeq(string(out)) {
		switch dep {
		case "net/http", "os/signal", "github.com/crewgo/crew":
			t.Errorf("%s depends on %s", strings.Join(pkgs, " "), dep)
		}
	}
}
