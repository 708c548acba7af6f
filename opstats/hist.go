package opstats

import (
	"math/bits"
	"time"
)

// histBins latency bins of microseconds, two per power of two: bin 0 is
// [0,1µs), bin 1 [1,2µs), then [2^e, 1.5·2^e) and [1.5·2^e, 2^(e+1)). The
// last bin (from 2^31µs, about 36 minutes) takes everything longer.
// Percentiles read from it are within 25% of the true value.
const histBins = 64

func histBin(d time.Duration) int {
	v := uint64(max(d, 0) / time.Microsecond)
	if v < 2 {
		return int(v)
	}
	e := bits.Len64(v) - 1
	i := 2*e + int(v>>(e-1)&1)
	return min(i, histBins-1)
}

// binBounds returns bin i's range in microseconds.
func binBounds(i int) (lo, hi float64) {
	if i < 2 {
		return float64(i), float64(i + 1)
	}
	e, half := i/2, i%2
	step := float64(uint64(1) << (e - 1))
	lo = float64(uint64(1)<<e) + float64(half)*step
	return lo, lo + step
}

// quantile returns the q-quantile of h in milliseconds: the middle of the
// bin where it falls (0 for an empty histogram).
func quantile(h *[histBins]uint32, q float64) float64 {
	var total uint64
	for _, n := range h {
		total += uint64(n)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, n := range h {
		seen += uint64(n)
		if seen >= rank {
			lo, hi := binBounds(i)
			return (lo + hi) / 2 / 1000
		}
	}
	return 0
}

// Hist is a latency histogram as it travels in a Snapshot: pairs of bin
// and count, for the bins that are not empty.
type Hist []uint32

func sparse(h *[histBins]uint32) Hist {
	var out Hist
	for i, n := range h {
		if n > 0 {
			out = append(out, uint32(i), n)
		}
	}
	return out
}

func (s Hist) addTo(h *[histBins]uint32) {
	for i := 0; i+1 < len(s); i += 2 {
		if s[i] < histBins {
			h[s[i]] += s[i+1]
		}
	}
}
