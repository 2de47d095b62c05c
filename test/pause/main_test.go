package main

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestWaitsForSignal checks that the program keeps waiting until SIGTERM or
// SIGINT arrives, and then returns.
func TestWaitsForSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ready := make(chan struct{})
			got := make(chan os.Signal, 1)
			go func() { got <- waitForSignal(ready) }()
			<-ready
			select {
			case s := <-got:
				t.Fatalf("returned %v before any signal was sent", s)
			case <-time.After(100 * time.Millisecond):
			}
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case s := <-got:
				if s != sig {
					t.Fatalf("returned %v, want %v", s, sig)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("still waiting 10s after %v", sig)
			}
		})
	}
}
