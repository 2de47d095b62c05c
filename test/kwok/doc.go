// Package kwok makes pods run, succeed and fail on an envtest API server
// without a kubelet: it starts the kwok binary (bin/k8s/kwok, built by
// hack/install-testbin.sh) with the stages of this package, creates one
// fake Node that kwok keeps Ready, and binds every unscheduled Pod to it,
// which is the one thing a scheduler would do here.
//
// The stages (stages/*.yaml, embedded) play a kubelet running the probe
// image:
//
//   - a bound Pod starts: Running and Ready, with an IP;
//   - a Pod whose image is never-starts:<tag> never starts: its container
//     waits with ErrImageNeverPull (imagePullPolicy Never) or ErrImagePull;
//   - a running Pod of an FLJob whose container runs the probe's "run"
//     command ends as that command would, after its --sleep, with its
//     --exit code and, when it names an --rc-file, its --rc as the
//     termination message (see Run);
//   - a Pod being deleted goes away.
//
// A missing kwok binary skips the test, except when CI=true: then it
// fails.
package kwok
