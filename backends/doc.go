// Package backends holds what every backend shares: the isolation model
// (Workload, built from an FLJob by FromFLJob and nowhere else), what a
// backend reports back (Observation), and the Backend interface that
// backends/k8s and backends/docker implement.
//
// The package imports only api/v1. A backend translates the model and
// must not decide isolation on its own: if it cannot honour a field of the
// model it fails the workload with a PermanentError naming what it cannot
// do.
package backends
