//go:build !linux || !cgo

package memrelease

// trimC does nothing: only glibc (Linux with cgo) is known to keep freed
// memory worth a call.
func trimC() {}
