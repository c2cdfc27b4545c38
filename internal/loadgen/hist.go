package loadgen

import (
	"math/bits"
	"time"
)

// Histogram counts latencies in log-linear buckets, as HDR histograms do: 64 linear
// buckets per power of two of microseconds, so a quantile is off by at most 1/64 (1.6%)
// whatever the number of samples, in a fixed 17 KiB. Not safe for concurrent use: each
// caller keeps its own and they are merged at the end.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	subBits  = 6
	subCount = 1 << subBits
	// Up to 2^40 µs (12 days); longer latencies land in the last bucket.
	histBuckets = subCount * (1 + 40 - subBits)
)

// bucketOf maps a latency in µs to its bucket: below 64 µs one bucket per µs; above, for
// us in [64·2^s, 128·2^s), bucket 64 + 64·s + (us>>s − 64).
func bucketOf(us uint64) int {
	if us < subCount {
		return int(us)
	}
	shift := bits.Len64(us) - subBits - 1
	i := subCount + shift*subCount + int(us>>shift) - subCount
	return min(i, histBuckets-1)
}

// bucketValue is the middle of bucket i, in µs.
func bucketValue(i int) float64 {
	if i < subCount {
		return float64(i)
	}
	shift := (i - subCount) / subCount
	lower := uint64((i-subCount)%subCount+subCount) << shift
	return float64(lower) + float64(uint64(1)<<shift)/2
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d/time.Microsecond))]++
	h.n++
	h.sum += d
	if d > h.max {
		h.max = d
	}
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is the number of latencies recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the latency below which a fraction q of the samples fall.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			d := time.Duration(bucketValue(i) * float64(time.Microsecond))
			return min(d, h.max)
		}
	}
	return h.max
}

// Latency summarizes a histogram, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Summary returns h's quantiles.
func (h *Histogram) Summary() Latency {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	var mean float64
	if h.n > 0 {
		mean = ms(h.sum) / float64(h.n)
	}
	return Latency{
		P50: ms(h.Quantile(0.50)), P95: ms(h.Quantile(0.95)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.max), Mean: mean,
	}
}
