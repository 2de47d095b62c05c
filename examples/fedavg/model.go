package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
)

// trueWeights is the linear model every site's data scatters around; the
// last feature is a constant 1, so the last weight is the intercept.
var trueWeights = []float64{2, -1, 0.5, 1}

// modelDim is the number of weights of the model.
var modelDim = len(trueWeights)

// dataset is one site's training data.
type dataset struct {
	x [][]float64
	y []float64
}

// siteData generates the site's data, deterministically from its name.
// Sample counts (20 to 80) and feature shifts differ between sites, so the
// data are not identically distributed and the weighting matters.
func siteData(site string) dataset {
	h := fnv.New64a()
	h.Write([]byte(site))
	seed := h.Sum64()
	rng := rand.New(rand.NewPCG(seed, seed>>17|1))
	n := 20 + int(seed%61)
	shift := 2*rng.Float64() - 1
	d := dataset{x: make([][]float64, n), y: make([]float64, n)}
	for i := range n {
		row := make([]float64, modelDim)
		for j := range modelDim - 1 {
			row[j] = rng.NormFloat64() + shift
		}
		row[modelDim-1] = 1
		d.x[i] = row
		d.y[i] = dot(trueWeights, row) + 0.1*rng.NormFloat64()
	}
	return d
}

// dot is the inner product of two vectors of equal length.
func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// loss is the mean squared error of weights w on d.
func (d dataset) loss(w []float64) float64 {
	var s float64
	for i, row := range d.x {
		e := dot(w, row) - d.y[i]
		s += e * e
	}
	return s / float64(len(d.y))
}

// gradient is the gradient of the mean squared error at w.
func (d dataset) gradient(w []float64) []float64 {
	g := make([]float64, len(w))
	for i, row := range d.x {
		e := dot(w, row) - d.y[i]
		for j := range g {
			g[j] += 2 * e * row[j] / float64(len(d.y))
		}
	}
	return g
}

// train takes steps gradient-descent steps of rate lr from w and returns
// the new weights; w is left unchanged.
func (d dataset) train(w []float64, lr float64, steps int) []float64 {
	out := append([]float64(nil), w...)
	for range steps {
		for j, g := range d.gradient(out) {
			out[j] -= lr * g
		}
	}
	return out
}

// update is one client's contribution to a round.
type update struct {
	site    string
	weights []float64
	samples int
}

// average is federated averaging: the mean of the updates' weights, each
// weighted by its sample count.
func average(updates []update) ([]float64, error) {
	if len(updates) == 0 {
		return nil, errors.New("no updates to average")
	}
	dim := len(updates[0].weights)
	sum := make([]float64, dim)
	total := 0
	for _, u := range updates {
		if len(u.weights) != dim {
			return nil, fmt.Errorf("site %s sent %d weights, want %d", u.site, len(u.weights), dim)
		}
		if u.samples <= 0 {
			return nil, fmt.Errorf("site %s reported %d samples", u.site, u.samples)
		}
		for j, v := range u.weights {
			sum[j] += float64(u.samples) * v
		}
		total += u.samples
	}
	for j := range sum {
		sum[j] /= float64(total)
	}
	return sum, nil
}
