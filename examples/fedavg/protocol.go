package main

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Message types, in the order a session uses them.
const (
	// msgHello is a client's first message, naming its site.
	msgHello = "hello"
	// msgTrain carries the global weights of a round to a client.
	msgTrain = "train"
	// msgUpdate carries a client's trained weights back.
	msgUpdate = "update"
	// msgDone carries the final weights after the last round.
	msgDone = "done"
	// msgReport is a client's evaluation of the final weights.
	msgReport = "report"
)

// message is one JSON line of the protocol.
type message struct {
	Type    string    `json:"type"`
	Site    string    `json:"site,omitempty"`
	Round   int       `json:"round,omitempty"`
	Weights []float64 `json:"weights,omitempty"`
	Samples int       `json:"samples,omitempty"`
	// Loss is the mean squared error of the weights received, on the
	// client's data, before it trains.
	Loss float64 `json:"loss,omitempty"`
}

// peer is one end of a connection speaking JSON lines.
type peer struct {
	conn net.Conn
	enc  *json.Encoder
	dec  *json.Decoder
}

// newPeer wraps conn.
func newPeer(conn net.Conn) *peer {
	return &peer{conn: conn, enc: json.NewEncoder(conn), dec: json.NewDecoder(conn)}
}

// send writes m as one line, giving up after timeout.
func (p *peer) send(m message, timeout time.Duration) error {
	if err := p.conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if err := p.enc.Encode(m); err != nil {
		return fmt.Errorf("send %s: %w", m.Type, err)
	}
	return nil
}

// recv reads one message of one of the types in want, giving up after
// timeout.
func (p *peer) recv(timeout time.Duration, want ...string) (message, error) {
	var m message
	if err := p.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return m, fmt.Errorf("set read deadline: %w", err)
	}
	if err := p.dec.Decode(&m); err != nil {
		return m, fmt.Errorf("receive %s: %w", strings.Join(want, " or "), err)
	}
	if !slices.Contains(want, m.Type) {
		return m, fmt.Errorf("received %q, want %s", m.Type, strings.Join(want, " or "))
	}
	return m, nil
}
