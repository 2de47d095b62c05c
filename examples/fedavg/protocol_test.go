package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// quiet is a logger for tests that keeps output readable.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// serverOutcome is what runServer returned.
type serverOutcome struct {
	model *globalModel
	err   error
}

// startServer starts a server on 127.0.0.1 and returns its address and a
// channel that delivers its outcome.
func startServer(t *testing.T, cfg serverConfig) (string, <-chan serverOutcome) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan serverOutcome, 1)
	go func() {
		m, err := runServer(ctx, ln, cfg, quiet)
		done <- serverOutcome{m, err}
	}()
	return ln.Addr().String(), done
}

// newServerConfig returns a server configuration with fresh directories.
func newServerConfig(t *testing.T) serverConfig {
	return serverConfig{clients: 2, rounds: 3, workspace: t.TempDir(), jobDir: t.TempDir(),
		jobID: "job-1", registerWait: 10 * time.Second, roundTimeout: 10 * time.Second}
}

// newClientConfig returns a client configuration for site.
func newClientConfig(t *testing.T, addr, site string) clientConfig {
	return clientConfig{server: addr, site: site, jobDir: t.TempDir(),
		connectTimeout: 10 * time.Second, idleTimeout: 10 * time.Second, lr: 0.05, steps: 2}
}

// readJSON decodes a result file.
func readJSON[T any](t *testing.T, name string) T {
	t.Helper()
	var v T
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// expectedWeights replays federated averaging without the network.
func expectedWeights(sites []string, rounds int, lr float64, steps int) []float64 {
	w := make([]float64, modelDim)
	for range rounds {
		var ups []update
		for _, s := range sites {
			d := siteData(s)
			ups = append(ups, update{site: s, weights: d.train(w, lr, steps), samples: len(d.y)})
		}
		w, _ = average(ups)
	}
	return w
}

func TestServerAndTwoClients(t *testing.T) {
	cfg := newServerConfig(t)
	addr, done := startServer(t, cfg)
	clients := []clientConfig{newClientConfig(t, addr, "site-b"), newClientConfig(t, addr, "site-a")}
	errs := make(chan error, len(clients))
	for _, c := range clients {
		go func() {
			_, err := runClient(context.Background(), c, quiet)
			errs <- err
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Errorf("client: %v", err)
		}
	}
	out := <-done
	if out.err != nil {
		t.Fatalf("server: %v", out.err)
	}

	want := expectedWeights([]string{"site-a", "site-b"}, cfg.rounds, 0.05, 2)
	approx := cmpopts.EquateApprox(0, 1e-12)
	if diff := cmp.Diff(want, out.model.Weights, approx); diff != "" {
		t.Errorf("final weights (-replayed +served):\n%s", diff)
	}
	stored := readJSON[globalModel](t, filepath.Join(cfg.jobDir, "global_model.json"))
	if diff := cmp.Diff(*out.model, stored); diff != "" {
		t.Errorf("global_model.json (-returned +stored):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"site-a", "site-b"}, stored.Sites); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}
	var losses []float64
	for i, r := range stored.Rounds {
		losses = append(losses, r.Loss)
		if i > 0 && !(r.Loss < losses[i-1]) {
			t.Errorf("round %d loss %v did not drop from %v", r.Round, r.Loss, losses[i-1])
		}
		cp := readJSON[roundResult](t, filepath.Join(cfg.workspace, "snapshot-storage",
			"job-1", fmt.Sprintf("round-%03d.json", r.Round)))
		if diff := cmp.Diff(r, cp); diff != "" {
			t.Errorf("checkpoint of round %d (-result +checkpoint):\n%s", r.Round, diff)
		}
	}
	if len(losses) != cfg.rounds || !(stored.FinalLoss < losses[len(losses)-1]) {
		t.Errorf("losses %v, final %v: want %d dropping rounds", losses, stored.FinalLoss, cfg.rounds)
	}
	meta := filepath.Join(cfg.workspace, "jobs-storage", "job-1", "meta.json")
	if _, err := os.Stat(meta); err != nil {
		t.Errorf("jobs storage: %v", err)
	}

	for _, c := range clients {
		m := readJSON[localMetrics](t, filepath.Join(c.jobDir, "local_metrics.json"))
		if m.Site != c.site || m.Samples != len(siteData(c.site).y) || len(m.Rounds) != cfg.rounds {
			t.Errorf("local metrics of %s: %+v", c.site, m)
		}
		if diff := cmp.Diff(out.model.Weights, m.Weights); diff != "" {
			t.Errorf("%s final weights (-server +client):\n%s", c.site, diff)
		}
	}
}

func TestServerFailsWithoutWorkspaceStorage(t *testing.T) {
	cfg := newServerConfig(t)
	cfg.workspace = filepath.Join(cfg.workspace, "file")
	if err := os.WriteFile(cfg.workspace, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, done := startServer(t, cfg)
	out := <-done
	if out.err == nil || !errors.Is(out.err, syscall.ENOTDIR) ||
		!strings.HasPrefix(out.err.Error(), "create workspace storage:") {
		t.Fatalf("server error = %v, want create workspace storage: ... ENOTDIR", out.err)
	}
}

// rawClient registers as site and returns its connection.
func rawClient(t *testing.T, addr, site string) *peer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := newPeer(conn)
	if err := p.send(message{Type: msgHello, Site: site}, time.Second); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServerRejectsStaleRound(t *testing.T) {
	cfg := newServerConfig(t)
	cfg.clients = 1
	addr, done := startServer(t, cfg)
	p := rawClient(t, addr, "site-1")
	m, err := p.recv(5*time.Second, msgTrain)
	if err != nil {
		t.Fatal(err)
	}
	reply := message{Type: msgUpdate, Site: "site-1", Round: m.Round + 1, Weights: m.Weights,
		Samples: 1}
	if err := p.send(reply, time.Second); err != nil {
		t.Fatal(err)
	}
	out := <-done
	if want := "round 1: site site-1 answered round 2"; out.err == nil || out.err.Error() != want {
		t.Errorf("server error = %v, want %q", out.err, want)
	}
}

func TestServerRejectsDuplicateSite(t *testing.T) {
	cfg := newServerConfig(t)
	addr, done := startServer(t, cfg)
	first := rawClient(t, addr, "site-1")
	dup := rawClient(t, addr, "site-1")
	if _, err := dup.recv(5*time.Second, msgTrain); err == nil {
		t.Errorf("second site-1 received work, want its connection closed")
	}
	c := newClientConfig(t, addr, "site-2")
	second := make(chan error, 1)
	go func() {
		_, err := runClient(context.Background(), c, quiet)
		second <- err
	}()
	if _, err := first.recv(5*time.Second, msgTrain); err != nil {
		t.Fatalf("first site-1 got no work: %v", err)
	}
	first.conn.Close()
	if out := <-done; out.err == nil {
		t.Errorf("server succeeded although site-1 left")
	}
	if err := <-second; err == nil {
		t.Errorf("site-2 succeeded although the server failed")
	}
}

func TestClientWaitsForServer(t *testing.T) {
	// Reserve a port, free it, and start the server there only later.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := newServerConfig(t)
	cfg.clients, cfg.rounds = 1, 1
	errs := make(chan error, 1)
	c := newClientConfig(t, addr, "site-1")
	go func() {
		_, err := runClient(context.Background(), c, quiet)
		errs <- err
	}()
	time.Sleep(1500 * time.Millisecond)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	model, err := runServer(context.Background(), ln, cfg, quiet)
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	if err := <-errs; err != nil {
		t.Fatalf("client: %v", err)
	}
	if diff := cmp.Diff([]string{"site-1"}, model.Sites); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}
}

func TestClientGivesUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClientConfig(t, addr, "site-1")
	c.connectTimeout = 300 * time.Millisecond
	_, err = runClient(context.Background(), c, quiet)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("client error = %v, want connection refused and deadline exceeded", err)
	}
}

func TestRunWritesReturnCode(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       func(jobDir string) []string
		wantRC     int
		wantRCFile string
	}{
		{
			name: "server without workspace storage",
			args: func(jobDir string) []string {
				return []string{"server", "--port", "0", "--workspace", file, "--job-dir", jobDir}
			},
			wantRC: rcFailed, wantRCFile: "1",
		},
		{
			name: "client without server",
			args: func(jobDir string) []string {
				return []string{"client", "--server", "127.0.0.1:1", "--site", "s",
					"--connect-timeout", "100ms", "--job-dir", jobDir}
			},
			wantRC: rcFailed, wantRCFile: "1",
		},
		{
			name:   "bad usage",
			args:   func(string) []string { return []string{"client", "--site", "s"} },
			wantRC: rcUsage,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobDir := t.TempDir()
			if got := run(tt.args(jobDir)); got != tt.wantRC {
				t.Errorf("exit code %d, want %d", got, tt.wantRC)
			}
			data, _ := os.ReadFile(filepath.Join(jobDir, rcFileName))
			if diff := cmp.Diff(tt.wantRCFile, string(data)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", rcFileName, diff)
			}
		})
	}
}
