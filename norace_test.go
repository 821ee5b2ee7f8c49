//go:build !race
// +build !race

package socketioguard

// raceDetector: see race_test.go.
const raceDetector = false
