// Package fake is an in-memory backends.Backend for tests of controllers and
// programs that drive one. It keeps one workload per attempt, adopts an
// existing workload on Start as real backends do, reports changes to
// watchers, and lets a test decide when and how each workload exits.
package fake
