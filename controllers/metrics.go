package controllers

import (
	"github.com/prometheus/client_golang/prometheus"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
)

// Metrics are the controller's own Prometheus metrics, beside
// controller-runtime's reconcile and work-queue metrics. Their labels have
// few values: never a job's name.
type Metrics struct {
	attempts      *prometheus.CounterVec
	finished      *prometheus.CounterVec
	launchLatency *prometheus.HistogramVec
}

// NewMetrics makes the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fljob_attempts_started_total",
			Help: "Attempts whose workload was created, by backend.",
		}, []string{"backend"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fljob_jobs_finished_total",
			Help: "FLJobs that reached Succeeded or Failed, by result and reason.",
		}, []string{"result", "reason"}),
		launchLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fljob_launch_latency_seconds",
			Help:    "Time from an FLJob's start to its job process running.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 12),
		}, []string{"role"}),
	}
	reg.MustRegister(m.attempts, m.finished, m.launchLatency)
	return m
}

func (m *Metrics) attemptStarted(backend string) {
	if m != nil {
		m.attempts.WithLabelValues(backend).Inc()
	}
}

// statusChanged counts what a status write changed: a job that started
// running, or one that finished.
func (m *Metrics) statusChanged(job *fljobv1.FLJob, old, cur *fljobv1.FLJobStatus) {
	if m == nil {
		return
	}
	if cur.Phase == fljobv1.PhaseRunning && old.Phase != fljobv1.PhaseRunning && cur.StartTime != nil {
		for _, c := range cur.Conditions {
			if c.Type == fljobv1.ConditionRunning {
				m.launchLatency.WithLabelValues(string(job.Spec.Role)).
					Observe(c.LastTransitionTime.Sub(cur.StartTime.Time).Seconds())
			}
		}
	}
	if cur.Phase.Finished() && !old.Phase.Finished() {
		m.finished.WithLabelValues(string(cur.Phase), cur.Reason).Inc()
	}
}
