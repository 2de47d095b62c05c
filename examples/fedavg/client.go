package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"
)

// Client timing.
const (
	// dialTimeout bounds one connection attempt.
	dialTimeout = 5 * time.Second
	// dialRetry is the pause between connection attempts.
	dialRetry = time.Second
)

// clientConfig configures the client role.
type clientConfig struct {
	server         string
	site           string
	jobDir         string
	connectTimeout time.Duration
	idleTimeout    time.Duration
	lr             float64
	steps          int
}

// localRound is what a client did in one round.
type localRound struct {
	Round int `json:"round"`
	// LossBefore is the loss of the global weights received.
	LossBefore float64 `json:"lossBefore"`
	// LossAfter is the loss of the locally trained weights sent back.
	LossAfter float64 `json:"lossAfter"`
}

// localMetrics is a client's result file.
type localMetrics struct {
	Site    string       `json:"site"`
	Server  string       `json:"server"`
	Samples int          `json:"samples"`
	Rounds  []localRound `json:"rounds"`
	// FinalLoss is the loss of the final global weights on local data.
	FinalLoss float64   `json:"finalLoss"`
	Weights   []float64 `json:"weights"`
}

// runClient connects to the server, retrying until cfg.connectTimeout,
// trains each round it is asked to and writes its metrics into the job
// directory. Cancelling ctx aborts it.
func runClient(ctx context.Context, cfg clientConfig, log *slog.Logger) (*localMetrics, error) {
	conn, err := connect(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	data := siteData(cfg.site)
	metrics := &localMetrics{Site: cfg.site, Server: cfg.server, Samples: len(data.y)}
	p := newPeer(conn)
	if err := p.send(message{Type: msgHello, Site: cfg.site}, ioTimeout); err != nil {
		return nil, errors.Join(err, ctx.Err())
	}
	log.Info("Connected to server", "samples", metrics.Samples)
	for {
		m, err := p.recv(cfg.idleTimeout, msgTrain, msgDone)
		if err != nil {
			return nil, errors.Join(err, ctx.Err())
		}
		if len(m.Weights) != modelDim {
			return nil, fmt.Errorf("server sent %d weights, want %d", len(m.Weights), modelDim)
		}
		reply := message{Site: cfg.site, Round: m.Round, Samples: metrics.Samples,
			Loss: data.loss(m.Weights)}
		if m.Type == msgDone {
			metrics.FinalLoss, metrics.Weights = reply.Loss, m.Weights
			reply.Type = msgReport
		} else {
			reply.Type, reply.Weights = msgUpdate, data.train(m.Weights, cfg.lr, cfg.steps)
			metrics.Rounds = append(metrics.Rounds, localRound{Round: m.Round,
				LossBefore: reply.Loss, LossAfter: data.loss(reply.Weights)})
			log.Info("Trained round", "round", m.Round, "lossBefore", reply.Loss,
				"lossAfter", data.loss(reply.Weights))
		}
		if err := p.send(reply, ioTimeout); err != nil {
			return nil, errors.Join(err, ctx.Err())
		}
		if m.Type == msgDone {
			break
		}
	}
	if err := writeJSON(filepath.Join(cfg.jobDir, "local_metrics.json"), metrics); err != nil {
		return nil, err
	}
	log.Info("Wrote local metrics", "finalLoss", metrics.FinalLoss)
	return metrics, nil
}

// connect dials the server until it answers, the connect timeout passes or
// ctx ends. Name resolution failures are retried too: the server's host
// name may appear only once its container or pod exists.
func connect(ctx context.Context, cfg clientConfig, log *slog.Logger) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.connectTimeout)
	defer cancel()
	d := net.Dialer{Timeout: dialTimeout}
	for attempt := 1; ; attempt++ {
		conn, err := d.DialContext(ctx, "tcp", cfg.server)
		if err == nil {
			return conn, nil
		}
		log.Info("Waiting for server", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to %s: %w", cfg.server, errors.Join(err, ctx.Err()))
		case <-time.After(dialRetry):
		}
	}
}
