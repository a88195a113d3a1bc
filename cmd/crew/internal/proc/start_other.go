//go:build !linux

package proc

import "os"

// startGuarded starts a child that the guard will watch. Only Linux has a
// parent-death signal to cover the moment before the guardian hears of it.
func startGuarded(path string, args []string, attr *os.ProcAttr) (*os.Process, error) {
	return os.StartProcess(path, args, attr)
}
