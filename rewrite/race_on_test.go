//go:build race

package rewrite

// raceEnabled: the race detector shadows every allocation, so resident
// memory says nothing about the code's own.
const raceEnabled = true
