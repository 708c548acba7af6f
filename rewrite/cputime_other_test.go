//go:build !unix

package rewrite

// cpuTime is not measured here: BenchmarkConstants reports 0 CPU.
func cpuTime() int64 { return 0 }
