package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The histogram's quantiles are within 1/64 of the exact ones (sorted samples).
func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	samples := make([]time.Duration, 100_000)
	for i := range samples {
		// Log-uniform from 10µs to 10s: every bucket range is exercised.
		samples[i] = time.Duration(math.Exp(math.Log(10e3) + r.Float64()*(math.Log(10e9)-math.Log(10e3))))
		h.Record(samples[i])
	}
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.95, 0.99, 0.999} {
		exact := samples[int(q*float64(len(samples)))-1]
		got := h.Quantile(q)
		if rel := math.Abs(float64(got-exact)) / float64(exact); rel > 1.0/64 {
			t.Errorf("p%g = %v, exact %v: off by %.2f%%", q*100, got, exact, rel*100)
		}
	}
	if h.Count() != uint64(len(samples)) {
		t.Errorf("count %d, want %d", h.Count(), len(samples))
	}
	if got := h.Quantile(1); got != samples[len(samples)-1] {
		t.Errorf("p100 = %v, want the maximum %v", got, samples[len(samples)-1])
	}
}

func TestHistogramMergeAndSmallValues(t *testing.T) {
	var a, b Histogram
	for i := range 50 {
		a.Record(time.Duration(i) * time.Microsecond)
		b.Record(time.Duration(50+i) * time.Microsecond)
	}
	a.Merge(&b)
	if a.Count() != 100 {
		t.Fatalf("count %d, want 100", a.Count())
	}
	// Below 64µs buckets are exact; the median of 0..99µs is 49µs.
	if got := a.Quantile(0.5); got != 49*time.Microsecond {
		t.Errorf("median %v, want 49µs", got)
	}
	if s := a.Summary(); s.Max != 0.099 || math.Abs(s.Mean-0.0495) > 1e-9 {
		t.Errorf("summary %+v: want max 0.099ms, mean 0.0495ms", s)
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 {
		t.Error("an empty histogram has no quantiles")
	}
}

func TestBuckets(t *testing.T) {
	// Every value falls in a bucket whose middle is within 1/128 of it (half a bucket).
	for _, us := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 12345, 1 << 20, 1<<30 + 12345} {
		i := bucketOf(us)
		mid := bucketValue(i)
		if us >= 64 && math.Abs(mid-float64(us))/float64(us) > 1.0/64 {
			t.Errorf("%dµs → bucket %d, middle %.1f: too far", us, i, mid)
		}
		if us < 64 && mid != float64(us) {
			t.Errorf("%dµs → bucket %d, value %.1f: want exact", us, i, mid)
		}
	}
	if bucketOf(math.MaxUint64) != histBuckets-1 {
		t.Error("huge values must land in the last bucket")
	}
}
