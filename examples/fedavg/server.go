package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// ioTimeout bounds every single send.
const ioTimeout = 10 * time.Second

// serverConfig configures the server role.
type serverConfig struct {
	listen       string
	clients      int
	rounds       int
	workspace    string
	jobDir       string
	jobID        string
	registerWait time.Duration
	roundTimeout time.Duration
}

// roundResult is what the server learned in one round.
type roundResult struct {
	Round int `json:"round"`
	// Loss is the sample-weighted mean loss of the round's global weights
	// on the clients' data.
	Loss    float64        `json:"loss"`
	Samples int            `json:"samples"`
	Clients []clientResult `json:"clients"`
	// Weights are the averaged weights the round produced.
	Weights []float64 `json:"weights"`
}

// clientResult is one client's part of a round.
type clientResult struct {
	Site    string  `json:"site"`
	Samples int     `json:"samples"`
	Loss    float64 `json:"loss"`
}

// globalModel is the server's result file.
type globalModel struct {
	JobID   string        `json:"jobID"`
	Weights []float64     `json:"weights"`
	Rounds  []roundResult `json:"rounds"`
	// FinalLoss is the sample-weighted loss of Weights on the clients' data.
	FinalLoss float64  `json:"finalLoss"`
	Sites     []string `json:"sites"`
}

// server runs one federated-averaging job.
type server struct {
	cfg      serverConfig
	log      *slog.Logger
	snapshot string

	mu    sync.Mutex
	peers []*peer
}

// runServer prepares the workspace storage, waits on ln for cfg.clients
// clients, runs the rounds and writes the result into the job directory.
// Cancelling ctx closes ln and every connection.
func runServer(ctx context.Context, ln net.Listener, cfg serverConfig,
	log *slog.Logger) (*globalModel, error) {
	s := &server{cfg: cfg, log: log}
	defer s.closeAll()
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		s.closeAll()
	})
	defer stop()

	if err := s.prepareStorage(); err != nil {
		return nil, err
	}
	if err := s.register(ln); err != nil {
		return nil, errors.Join(err, ctx.Err())
	}
	model, err := s.train()
	if err != nil {
		return nil, errors.Join(err, ctx.Err())
	}
	if err := writeJSON(filepath.Join(cfg.jobDir, "global_model.json"), model); err != nil {
		return nil, err
	}
	log.Info("Wrote global model", "finalLoss", model.FinalLoss, "weights", model.Weights)
	return model, nil
}

// prepareStorage creates the snapshot and job storage directories in the
// workspace root, as an NVFlare server job does, and records the job there.
func (s *server) prepareStorage() error {
	s.snapshot = filepath.Join(s.cfg.workspace, "snapshot-storage", s.cfg.jobID)
	jobs := filepath.Join(s.cfg.workspace, "jobs-storage", s.cfg.jobID)
	for _, dir := range []string{s.snapshot, jobs} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create workspace storage: %w", err)
		}
	}
	meta := map[string]any{"jobID": s.cfg.jobID, "clients": s.cfg.clients,
		"rounds": s.cfg.rounds, "created": time.Now().UTC()}
	if err := writeJSON(filepath.Join(jobs, "meta.json"), meta); err != nil {
		return err
	}
	s.log.Info("Created workspace storage", "snapshot", s.snapshot, "jobs", jobs)
	return nil
}

// register accepts clients until cfg.clients distinct sites said hello.
func (s *server) register(ln net.Listener) error {
	deadline := time.Now().Add(s.cfg.registerWait)
	if tl, ok := ln.(*net.TCPListener); ok {
		if err := tl.SetDeadline(deadline); err != nil {
			return fmt.Errorf("set accept deadline: %w", err)
		}
	}
	s.log.Info("Waiting for clients", "want", s.cfg.clients, "address", ln.Addr().String())
	sites := map[string]bool{}
	for len(sites) < s.cfg.clients {
		conn, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accept clients (%d of %d registered): %w",
				len(sites), s.cfg.clients, err)
		}
		p := newPeer(conn)
		hello, err := p.recv(time.Until(deadline), msgHello)
		if err == nil && (hello.Site == "" || sites[hello.Site]) {
			err = fmt.Errorf("site name %q is empty or taken", hello.Site)
		}
		if err != nil {
			s.log.Info("Rejected connection", "remote", conn.RemoteAddr().String(), "err", err)
			conn.Close()
			continue
		}
		sites[hello.Site] = true
		s.mu.Lock()
		s.peers = append(s.peers, p)
		s.mu.Unlock()
		s.log.Info("Client registered", "site", hello.Site, "remote", conn.RemoteAddr().String())
	}
	return nil
}

// train runs the rounds and the final evaluation.
func (s *server) train() (*globalModel, error) {
	model := &globalModel{JobID: s.cfg.jobID, Weights: make([]float64, modelDim)}
	for r := 1; r <= s.cfg.rounds; r++ {
		s.log.Info("Starting round", "round", r)
		replies, err := s.exchange(message{Type: msgTrain, Round: r, Weights: model.Weights},
			msgUpdate)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		res, err := summarize(r, replies)
		if err == nil {
			res.Weights, err = average(updates(replies))
		}
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		model.Weights = res.Weights
		model.Rounds = append(model.Rounds, res)
		if err := s.checkpoint(res); err != nil {
			return nil, err
		}
		s.log.Info("Finished round", "round", r, "loss", res.Loss, "samples", res.Samples)
	}

	replies, err := s.exchange(message{Type: msgDone, Round: s.cfg.rounds,
		Weights: model.Weights}, msgReport)
	if err != nil {
		return nil, fmt.Errorf("final evaluation: %w", err)
	}
	final, err := summarize(s.cfg.rounds, replies)
	if err != nil {
		return nil, fmt.Errorf("final evaluation: %w", err)
	}
	model.FinalLoss = final.Loss
	for _, c := range final.Clients {
		model.Sites = append(model.Sites, c.Site)
	}
	return model, nil
}

// exchange sends m to every client, then reads one reply of type want from
// each, checking that it answers m's round.
func (s *server) exchange(m message, want string) ([]message, error) {
	s.mu.Lock()
	peers := slices.Clone(s.peers)
	s.mu.Unlock()
	for _, p := range peers {
		if err := p.send(m, ioTimeout); err != nil {
			return nil, err
		}
	}
	replies := make([]message, 0, len(peers))
	for _, p := range peers {
		reply, err := p.recv(s.cfg.roundTimeout, want)
		if err != nil {
			return nil, err
		}
		if reply.Round != m.Round {
			return nil, fmt.Errorf("site %s answered round %d", reply.Site, reply.Round)
		}
		replies = append(replies, reply)
	}
	return replies, nil
}

// summarize collects one round's replies, in site order so that sums do
// not depend on arrival order, and weighs the clients' losses by samples.
func summarize(round int, replies []message) (roundResult, error) {
	slices.SortFunc(replies, func(a, b message) int { return strings.Compare(a.Site, b.Site) })
	res := roundResult{Round: round}
	var lossSum float64
	for _, m := range replies {
		res.Clients = append(res.Clients, clientResult{Site: m.Site, Samples: m.Samples,
			Loss: m.Loss})
		res.Samples += m.Samples
		lossSum += float64(m.Samples) * m.Loss
	}
	if res.Samples <= 0 {
		return res, errors.New("clients reported no samples")
	}
	res.Loss = lossSum / float64(res.Samples)
	return res, nil
}

// updates turns replies into the updates to average.
func updates(replies []message) []update {
	out := make([]update, 0, len(replies))
	for _, m := range replies {
		out = append(out, update{site: m.Site, weights: m.Weights, samples: m.Samples})
	}
	return out
}

// checkpoint stores a round's result in the snapshot storage.
func (s *server) checkpoint(res roundResult) error {
	name := filepath.Join(s.snapshot, fmt.Sprintf("round-%03d.json", res.Round))
	if err := writeJSON(name, res); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// closeAll closes every client connection.
func (s *server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.peers {
		p.conn.Close()
	}
}

// writeJSON writes v as indented JSON to name, through a temporary file so
// readers never see half a file.
func writeJSON(name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(name), err)
	}
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(name), err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(name), err)
	}
	return nil
}
