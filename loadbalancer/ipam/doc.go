// Package ipam hands out load-balancer IPs from the configured address pools.
//
// It is pure bookkeeping: no Kubernetes API calls, no clock, no goroutines.
// The loadbalancer package translates Services into Requests and calls
// Ensure, Release and Restore under its own control.
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
package ipam
