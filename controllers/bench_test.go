package controllers

import (
	"testing"

	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/test/builder"
)

// BenchmarkDecide measures one decision for a running FLJob: the work every
// reconcile does besides its API and backend calls.
func BenchmarkDecide(b *testing.B) {
	job := builder.FLJob("a").ActiveDeadline(600).Status(running(1)).Obj()
	obs := &backends.Observation{State: backends.StateRunning, Name: "w-1", ID: "id1",
		CreatedAt: at(0), StartedAt: at(1)}
	b.ReportAllocs()
	for b.Loop() {
		Decide(job, obs, at(30), DefaultPolicy)
	}
}

// BenchmarkFromFLJob measures building the isolation model of one attempt.
func BenchmarkFromFLJob(b *testing.B) {
	job := builder.FLJob("a").Server().Env("A", "1").SecretEnv("T", "s", "k").CPU("1").Memory("1Gi").Obj()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := backends.FromFLJob(job, 1); err != nil {
			b.Fatal(err)
		}
	}
}
