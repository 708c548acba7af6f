//go:build linux && cgo

package memrelease

/*
#include <malloc.h>
*/
import "C"

// trimC returns the free memory of every glibc arena (not only the top of
// the main heap: glibc 2.8 and later release whole free pages in each).
func trimC() { C.malloc_trim(0) }
