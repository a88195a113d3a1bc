package main

import (
	"os"
	"sync"
	"syscall"
)

// onSignals watches for SIGINT and SIGTERM while a command runs, with the
// meaning they have everywhere in crew, the meaning of Group.Stop: the
// first signal calls drain, which lets the work in progress finish; the
// second calls cut, which cuts that drain short. Later signals are
// ignored. The returned function stops the watch, and returns once neither
// drain nor cut can be called any more; call it once the work has ended.
func (a *app) onSignals(drain, cut func(os.Signal)) (stop func()) {
	sigs := make(chan os.Signal, 2)
	a.notify(sigs, os.Interrupt, syscall.SIGTERM)
	quit := make(chan struct{})
	var watching sync.WaitGroup
	watching.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-quit:
				return
			case sig := <-sigs:
				switch n {
				case 0:
					drain(sig)
				case 1:
					cut(sig)
				}
			}
		}
	})
	return func() {
		a.stopNotify(sigs)
		close(quit)
		watching.Wait()
	}
}
