// Package report defines the JSON document that the probe program prints
// after inspecting the container or pod it runs in.
//
// The probe runs as an FLJob's process; tests decode its output with
// [Decode] and assert on what the process really saw: its identity, the
// workspace root's mode and mount, which paths refuse writes and with which
// errno, its capability sets and what it can reach.
package report
