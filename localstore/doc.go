// Package localstore keeps FLJobs, their events and Secrets in a directory
// on one host: the single-host twin of the Kubernetes API, for fljob's
// docker mode.
//
// Layout under the state directory (default $XDG_STATE_HOME/fljob):
//
//	fljobs/<namespace>/<name>.yaml   one FLJob per file
//	events/<namespace>/<name>.yaml   the FLJob's last events
//	secrets/<namespace>/<name>.yaml  Secrets, mode 0600
//	resource-version                 the last resource version handed out
//	store.lock                       held while writing
//	controller.lock                  held by the running controller
//
// Every write replaces a whole file atomically (a temporary file, fsync,
// rename, fsync of the directory), so a crash leaves either the old or the
// new file, never a torn one. Writers hold an exclusive flock on store.lock,
// so one process at a time writes; readers take no lock. Resource versions
// come from one counter and make every write optimistic: writing the status
// of a version that is no longer stored fails with controllers.ErrConflict.
//
// The store keeps the API server's semantics where the controller depends
// on them: validation with the CRD on every write (package validation),
// uid and creationTimestamp assigned on create, generation bumped when the
// spec changes, and finalizers: Delete marks an FLJob that still has some
// with a deletionTimestamp and removes it once the last one goes.
//
// Changes are found by polling: Watch reads the resource-version counter
// every PollInterval and, when it moved, lists the FLJobs and reports those
// whose resource version changed. Polling a few bytes is cheap, needs no
// inotify limits, and sees writes of every process alike.
package localstore
