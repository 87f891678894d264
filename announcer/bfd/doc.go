// Package bfd is a small implementation of Bidirectional Forwarding
// Detection (RFC 5880) for single-hop (RFC 5881) and multihop (RFC 5883)
// sessions over UDP, in asynchronous mode, without authentication, demand
// mode or the echo function. The BGP speaker runs one session per peer
// that has a bfd-profile, and closes the BGP session the moment BFD says
// the path is gone.
//
// Why BFD: a node that goes silent (hung kernel, dead NIC, a switch in the
// path failing) keeps its TCP session open, so a router drops its routes
// only after the BGP hold time, 90 s by default. With BFD at 100 ms x 3 the
// router drops them after 0.3 s, because the router's bfdd stops hearing
// our control packets.
//
// Why our own: GoBGP v3, the speaker this project embeds, has no BFD; the
// Go BFD daemons published as source keep their protocol code in internal
// packages, and none is served as a module one can import. RFC 5880's
// asynchronous mode is small: a 24-byte packet, four states and two timers.
//
// The package is split the way the rest of the announcer is:
//
//   - packet.go is the codec, pure and fuzzed (FuzzParse);
//   - session.go is the state machine of one session (RFC 5880 6.8), pure:
//     it takes packets and the time, and says what changed and when to
//     send, so tests drive it without sockets or clocks;
//   - manager.go owns the sockets (port 3784 single hop, 4784 multihop,
//     TTL 255 and the TTL check of RFC 5881/5082, a source port from
//     49152-65535 per session) and one goroutine per session.
//
// Timing arithmetic. A session is Up after a three-way exchange of packets
// (Down -> Init -> Up); while it is not Up we send at most once a second
// (RFC 5880 6.8.3), so it comes up 1-2 s after both ends start. Once Up,
// the intervals of the profile apply: we send every max(our
// transmit-interval, the peer's receive-interval), less 0-25 % jitter, and
// declare the session Down when nothing came for detect-multiplier x
// max(our receive-interval, the peer's transmit-interval). At the
// MetalLB defaults (300 ms x 3) that is 0.9 s; at 100 ms x 3, 0.3 s.
package bfd
