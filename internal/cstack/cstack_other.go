//go:build !linux || !cgo

package cstack

// supported: this build neither sets nor measures thread stacks.
const supported = false

// Default reports false: only Linux with cgo sets thread stack sizes.
func Default() (int, bool) { return 0, false }

// Current reports false: only Linux with cgo measures thread stacks.
func Current() (int, bool) { return 0, false }

// Used runs f and reports false: only Linux with cgo measures thread stacks.
func Used(max int, f func()) (int, bool) {
	f()
	return 0, false
}
