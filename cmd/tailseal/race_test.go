//go:build race

package main

// raceEnabled: the tests run under -race, so the agent they drive is built
// with -race too and the heaviest tests use fewer lines.
const raceEnabled = true
