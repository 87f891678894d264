// Package bgp announces the IPs of bgp pools to routers with an embedded
// GoBGP speaker (github.com/osrg/gobgp/v3).
//
// Every eligible node announces every IP of a bgp pool with itself as next
// hop; the routers spread traffic over the nodes by ECMP. There is no owner
// and no liveness from memberlist: a node that dies loses its TCP sessions,
// and the routers drop its next hop when the session goes (at once on a
// reset, after the hold time when the node goes silent).
//
// The Speaker is an announcer.Announcer: the controller hands it the whole
// set of IPs this node announces, and the Speaker works out the routes
// (aggregated prefixes, communities, large communities, local preference)
// and adds or withdraws only what changed. SetPeers, also called by the
// controller, gives it the peers whose node-selectors match this node.
//
// The speaker only dials out, as MetalLB's does: it does not listen on
// port 179, so routers must accept the nodes' connections (a passive peer
// or a listen range on the router).
//
// Sessions are watched for state changes and for the reason a session
// cannot be established: a refused connection, an AS number the router
// rejects (or the router's AS not being peer-asn), and a TCP MD5 password
// that does not match (which TCP makes silent: the router drops our SYNs
// while answering ARP/NDP) are told apart in the log and in the
// baremetal_announcer_bgp_session_failures_total{reason} metric.
//
// A peer with a bfd-profile also gets a BFD session (package
// announcer/bfd); BFD going down resets the BGP session at once, so a
// node or router that goes silent is dropped in the BFD detection time
// instead of the hold time. See bfd.go.
package bgp
