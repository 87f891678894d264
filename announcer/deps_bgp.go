//go:build bgpdeps

// This file only keeps github.com/osrg/gobgp/v3 required in go.mod (go mod
// tidy honours every build tag) until the BGP announcer imports it. The
// tag keeps it out of every real build, so the binary does not link gobgp.
// Delete this file when announcer/bgp exists.
package announcer

import _ "github.com/osrg/gobgp/v3/pkg/server"
