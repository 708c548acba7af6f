package memrelease

import "runtime/debug"

// Release collects the Go heap and returns its free pages to the system,
// then asks the C allocator to do the same with its free memory. The
// collection marks every live object of the process: call it when the
// large structures are garbage, not while they are live.
func Release() {
	debug.FreeOSMemory()
	trimC()
}

// ReleaseC returns the C allocator's free memory to the system, leaving the
// Go heap as it is (for when a large Go structure is live and a collection
// would only mark it).
func ReleaseC() { trimC() }
