// Package k8s is the Kubernetes backend: the only package that builds Pods.
//
// It has two layers. The pure translation, PodFor, ServiceFor and
// ObservationFrom, turns the isolation model (backends.Workload) into a Pod
// and a Service and reads a Pod back into a backends.Observation; it needs
// no API server and is unit-tested field by field. Backend implements
// backends.Backend and backends.LogReader over a controller-runtime client:
// it creates, adopts, observes, stops and removes those objects, finding
// them by deterministic name and label, never from memory.
//
// The decisions this translation makes (how the workspace root gets mode
// 1777, who creates the job directory, how NVFlare's return code reaches
// status) are written down in docs/kubernetes-backend.md.
package k8s
