// Package ipam hands out load-balancer IPs from the configured address pools.
//
// It is pure bookkeeping: no Kubernetes API calls, no clock, no goroutines.
// The loadbalancer package translates Services into Requests and calls
// Ensure, Release, Restore and Reconfigure under its own control.
//
// Three choices shape it:
//
//   - State is kept only for addresses in use (a map per pool), so a /64
//     IPv6 pool costs the same memory as a /30. Pools are never enumerated.
//   - A free address is found "next-fit": the search starts after the address
//     handed out last in that range. It is O(1) amortised for the common
//     case, and it avoids handing a just-released address straight to another
//     Service while clients may still hold stale ARP entries or DNS for it.
//   - Ensure is transactional. It works out the whole answer for a Service
//     (every IP family) before changing anything, so a request that fails
//     leaves the Service's existing addresses exactly as they were.
//
// # The address rule
//
// A Service's address changes only when that Service's own request asks for
// it, or when it is released. Config edits and restarts never move, drop or
// duplicate an address in use. So the rules of the config split in two:
//
//   - An address newly given must satisfy all of them: in a pool, not
//     skipped by avoid-buggy-ips, allowed by the pool's namespaces and
//     service-selectors, in the requested pool, free (or shareable).
//   - An address a Service already holds is checked only against the
//     Service's own request: the requested IP and families, the requested
//     pool, and sharing (sharing key, ports, traffic policy). A requested
//     pool matches when it names the pool the address was given from (its
//     "origin", recorded per holder) or the pool containing it now, so
//     swapping two pools' ranges moves no pinned Service. A requested pool
//     or a new sharing key moves the Service; ports or a traffic policy
//     that clash with the other holders' are refused, and it keeps the
//     address (a port typo must not move a working address).
//
// An address in use that the config in effect would not give its holders
// today is "retained": it stays with them, is never handed to anyone else
// (neither as free nor to share), and is free again once they release it.
// Reconfigure therefore always succeeds, and Restore keeps a status address
// outside every pool. Retained lists them, for the caller to flag.
//
// Pool usage counts an address in use in the pool that could hand it out;
// a retained address outside every pool (or skipped by avoid-buggy-ips) is
// in use but in no pool, so InUse never exceeds Usable.
//
// Status lags allocation: the service controller writes the address Ensure
// returned after it returns, and may fail to. SetShownBy lets the caller say
// which addresses other Services' status still shows, and those are not free.
package ipam
