package main

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestAverage(t *testing.T) {
	tests := []struct {
		name    string
		updates []update
		want    []float64
		wantErr string
	}{
		{
			name:    "single client",
			updates: []update{{site: "a", weights: []float64{1, -2}, samples: 7}},
			want:    []float64{1, -2},
		},
		{
			name: "weighted by samples",
			updates: []update{
				{site: "a", weights: []float64{0, 4}, samples: 1},
				{site: "b", weights: []float64{4, 0}, samples: 3},
			},
			want: []float64{3, 1},
		},
		{
			name: "equal samples is the plain mean",
			updates: []update{
				{site: "a", weights: []float64{1, 2, 3}, samples: 10},
				{site: "b", weights: []float64{3, 2, 1}, samples: 10},
				{site: "c", weights: []float64{2, 5, 2}, samples: 10},
			},
			want: []float64{2, 3, 2},
		},
		{name: "no updates", wantErr: "no updates to average"},
		{
			name: "dimension mismatch",
			updates: []update{
				{site: "a", weights: []float64{1, 2}, samples: 1},
				{site: "b", weights: []float64{1}, samples: 1},
			},
			wantErr: "site b sent 1 weights, want 2",
		},
		{
			name:    "no samples",
			updates: []update{{site: "a", weights: []float64{1}, samples: 0}},
			wantErr: "site a reported 0 samples",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := average(tt.updates)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Errorf("average error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
				t.Errorf("average (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSiteData(t *testing.T) {
	a, again, b := siteData("site-1"), siteData("site-1"), siteData("site-2")
	if diff := cmp.Diff(a, again, cmp.AllowUnexported(dataset{})); diff != "" {
		t.Errorf("siteData is not deterministic (-first +second):\n%s", diff)
	}
	if cmp.Equal(a, b, cmp.AllowUnexported(dataset{})) {
		t.Errorf("site-1 and site-2 got the same data")
	}
	for _, d := range []dataset{a, b} {
		if n := len(d.y); n < 20 || n > 80 || len(d.x) != n {
			t.Errorf("dataset has %d targets and %d rows, want 20..80 of each", n, len(d.x))
		}
		if loss := d.loss(trueWeights); loss > 0.05 {
			t.Errorf("loss of the true weights = %v, want the noise level (about 0.01)", loss)
		}
	}
}

func TestGradientMatchesFiniteDifferences(t *testing.T) {
	d := siteData("gradient-check")
	w := []float64{0.3, -0.7, 1.1, 0.2}
	got := d.gradient(w)
	const h = 1e-6
	want := make([]float64, len(w))
	for j := range w {
		plus, minus := append([]float64(nil), w...), append([]float64(nil), w...)
		plus[j] += h
		minus[j] -= h
		want[j] = (d.loss(plus) - d.loss(minus)) / (2 * h)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(1e-6, 1e-6)); diff != "" {
		t.Errorf("gradient (-finite differences +analytic):\n%s", diff)
	}
}

func TestTrainLowersLoss(t *testing.T) {
	d := siteData("site-1")
	w := make([]float64, modelDim)
	trained := d.train(w, 0.05, 50)
	if before, after := d.loss(w), d.loss(trained); !(after < before/10) {
		t.Errorf("loss %v -> %v after 50 steps, want a tenfold drop", before, after)
	}
	if !cmp.Equal(w, make([]float64, modelDim)) {
		t.Errorf("train modified its input weights: %v", w)
	}
	for _, v := range trained {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("trained weights diverged: %v", trained)
		}
	}
}
