// Package controllers decides what happens to an FLJob. Decide is the whole
// decision logic, a pure function of an FLJob, an observation of its
// current attempt and the time. Reconciler applies it on any Store (the
// Kubernetes API through KubeStore, or the single-host store) and any
// backends.Backend, and KubeController runs it under controller-runtime.
//
// The package never imports a concrete backend: cmd/ wires them.
package controllers
