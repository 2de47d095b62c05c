package kwok_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fljob-dev/fljob/test/envtest"
	"github.com/fljob-dev/fljob/test/kwok"
)

func TestRunArgs(t *testing.T) {
	tests := []struct {
		name string
		run  kwok.Run
		want []string
	}{
		{"exit only", kwok.Run{}, []string{"run", "--exit", "0"}},
		{"sleep and exit", kwok.Run{Sleep: 1500 * time.Millisecond, Exit: 9},
			[]string{"run", "--sleep", "1.5s", "--exit", "9"}},
		{"return code file", kwok.Run{Exit: 1, ReturnCode: ptr.To[int32](101), RCFile: "/w/j/_process_rc.txt"},
			[]string{"run", "--rc-file", "/w/j/_process_rc.txt", "--rc", "101", "--exit", "1"}},
		{"return code without a file writes none", kwok.Run{ReturnCode: ptr.To[int32](3)},
			[]string{"run", "--exit", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.run.Args()); diff != "" {
				t.Errorf("Args (-want +got):\n%s", diff)
			}
		})
	}
}

// terminated is the part of a finished container's status the stages
// decide.
type terminated struct {
	Phase    corev1.PodPhase
	ExitCode int32
	Reason   string
	Message  string
}

// TestStages runs kwok with this package's stages against a real API server
// and checks what each stage makes of bare pods, with no controller.
func TestStages(t *testing.T) {
	kwok.RequireBinary(t, "kwok") // before spending seconds on the control plane
	env := envtest.StartEnv(t)
	cluster := kwok.Start(t, env)
	c := env.Client
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("the node is Ready with capacity", func(t *testing.T) {
		node := &corev1.Node{}
		if err := c.Get(ctx, client.ObjectKey{Name: cluster.Node}, node); err != nil {
			t.Fatalf("get node: %v", err)
		}
		if got := node.Status.Allocatable.Pods().Value(); got < 200 {
			t.Errorf("allocatable pods = %d, want at least 200", got)
		}
	})

	t.Run("run pods of an FLJob end with their exit code and return code", func(t *testing.T) {
		rcFile := "/ws/job/_process_rc.txt"
		tests := []struct {
			name string
			run  kwok.Run
			want terminated
		}{
			{"success", kwok.Run{Sleep: time.Second, ReturnCode: ptr.To[int32](0), RCFile: rcFile},
				terminated{corev1.PodSucceeded, 0, "Completed", "0"}},
			{"exception", kwok.Run{Exit: 1, ReturnCode: ptr.To[int32](101), RCFile: rcFile},
				terminated{corev1.PodFailed, 1, "Error", "101"}},
			{"no return code file", kwok.Run{Exit: 9},
				terminated{corev1.PodFailed, 9, "Error", ""}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				pod := ownedPod(fmt.Sprintf("run-%d", i), "probe:dev", tt.run.Args())
				start := time.Now()
				got := waitPod(ctx, t, c, pod, func(p *corev1.Pod) bool {
					return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
				})
				if time.Since(start) < tt.run.Sleep {
					t.Errorf("pod ended after %v, before its --sleep %v", time.Since(start), tt.run.Sleep)
				}
				cs := got.Status.ContainerStatuses
				if len(cs) != 1 || cs[0].State.Terminated == nil {
					t.Fatalf("container statuses = %+v, want one terminated", cs)
				}
				term := cs[0].State.Terminated
				gotT := terminated{got.Status.Phase, term.ExitCode, term.Reason, term.Message}
				if diff := cmp.Diff(tt.want, gotT); diff != "" {
					t.Errorf("terminated (-want +got):\n%s", diff)
				}
				if term.StartedAt.IsZero() || term.FinishedAt.Before(&term.StartedAt) {
					t.Errorf("started %v, finished %v", term.StartedAt, term.FinishedAt)
				}
			})
		}
	})

	t.Run("pods of other owners or commands keep running", func(t *testing.T) {
		notOwned := ownedPod("not-owned", "probe:dev", kwok.Run{}.Args())
		notOwned.OwnerReferences = nil
		forever := ownedPod("forever", "probe:dev", kwok.Forever())
		for _, pod := range []*corev1.Pod{notOwned, forever} {
			got := waitPod(ctx, t, c, pod, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
			if got.Spec.NodeName != cluster.Node || got.Status.PodIP == "" {
				t.Errorf("pod %s: node %q, IP %q; want bound to %s with an IP",
					pod.Name, got.Spec.NodeName, got.Status.PodIP, cluster.Node)
			}
		}
		// Past the longest delay of the exit stage for a pod without --sleep.
		time.Sleep(2 * time.Second)
		for _, pod := range []*corev1.Pod{notOwned, forever} {
			got := &corev1.Pod{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
				t.Fatalf("get pod: %v", err)
			}
			if got.Status.Phase != corev1.PodRunning {
				t.Errorf("pod %s phase = %s, want still Running", pod.Name, got.Status.Phase)
			}
		}
	})

	t.Run("a never-starts image waits with ErrImageNeverPull", func(t *testing.T) {
		pod := ownedPod("never", kwok.ImageNeverStarts+":v1", kwok.Run{}.Args())
		got := waitPod(ctx, t, c, pod, func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].State.Waiting != nil
		})
		w := got.Status.ContainerStatuses[0].State.Waiting
		if w.Reason != "ErrImageNeverPull" || got.Status.Phase != corev1.PodPending {
			t.Errorf("phase %s, waiting %+v; want Pending with ErrImageNeverPull", got.Status.Phase, w)
		}
	})

	t.Run("a deleted pod goes away", func(t *testing.T) {
		pod := ownedPod("deleted", "probe:dev", kwok.Forever())
		waitPod(ctx, t, c, pod, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		if err := c.Delete(ctx, pod, client.GracePeriodSeconds(30)); err != nil {
			t.Fatalf("delete pod: %v", err)
		}
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true,
			func(ctx context.Context) (bool, error) {
				err := c.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
				return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
			})
		if err != nil {
			t.Fatalf("pod still there: %v", err)
		}
	})
}

// ownedPod returns a pod that an FLJob controls, as the kubernetes backend
// makes them, with one container "job".
func ownedPod(name, image string, args []string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "default",
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "fljob.dev/v1", Kind: "FLJob", Name: "owner", UID: "uid-owner",
				Controller: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "job", Image: image, Args: args, ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
}

// waitPod creates pod and waits until done accepts it.
func waitPod(ctx context.Context, t *testing.T, c client.Client, pod *corev1.Pod,
	done func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	if err := c.Create(ctx, pod); err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	got := &corev1.Pod{}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			if err := c.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
				return false, err
			}
			return done(got), nil
		})
	if err != nil {
		t.Fatalf("pod %s: %v; last status %+v", pod.Name, err, got.Status)
	}
	return got
}
