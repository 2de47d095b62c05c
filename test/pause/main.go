package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	waitForSignal(nil)
}

// waitForSignal blocks until the process receives SIGTERM or SIGINT and
// returns that signal. It closes ready, when not nil, once the signals are
// caught, so that a test knows when sending one is safe.
func waitForSignal(ready chan<- struct{}) os.Signal {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if ready != nil {
		close(ready)
	}
	return <-sigs
}
