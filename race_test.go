//go:build race
// +build race

package socketioguard

// raceDetector: under the race detector allocation counts are not exact
// (sync.Pool drops what it holds at random; the detector's own bookkeeping).
const raceDetector = true
