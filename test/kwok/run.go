package kwok

import (
	"strconv"
	"time"
)

// Run is what a container running the probe's "run" command does, in the
// terms stages/pod-exit.yaml plays it: it runs for Sleep, writes ReturnCode
// into RCFile when both are set, then exits with Exit. The same arguments
// make the real probe image do the same on a real node.
type Run struct {
	Sleep time.Duration
	Exit  int32
	// ReturnCode is NVFlare's return code the job writes to RCFile, which
	// is the container's termination message file; nil writes none.
	ReturnCode *int32
	// RCFile is the return code file's path inside the container.
	RCFile string
}

// Args returns the container arguments of r.
func (r Run) Args() []string {
	args := []string{"run"}
	if r.Sleep > 0 {
		args = append(args, "--sleep", r.Sleep.String())
	}
	if r.ReturnCode != nil && r.RCFile != "" {
		args = append(args, "--rc-file", r.RCFile, "--rc", strconv.Itoa(int(*r.ReturnCode)))
	}
	return append(args, "--exit", strconv.Itoa(int(r.Exit)))
}

// Forever are container arguments that make the probe, and kwok's pod,
// run until stopped.
func Forever() []string { return []string{"sleep", "24h"} }
