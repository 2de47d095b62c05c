package v1

// Finished reports whether the phase is terminal: Succeeded or Failed.
func (p Phase) Finished() bool {
	return p == PhaseSucceeded || p == PhaseFailed
}
