//go:build !race

package main

// raceDetector is whether the tests run with -race, whose detector's own
// memory counts in RSS.
const raceDetector = false
