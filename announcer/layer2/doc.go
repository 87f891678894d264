// Package layer2 announces load-balancer IPs on the local network segment:
// it answers ARP requests (IPv4) and neighbor solicitations (IPv6) for the
// IPs this node owns, with the MAC address of the interface they arrive on,
// and on takeover it sends gratuitous ARP and unsolicited neighbor
// advertisements so that clients switch to this node at once.
//
// The node's kernel never answers for these IPs itself: they are not
// configured on the interface (kube-proxy puts them on lo or kube-ipvs0,
// and arp_ignore keeps the kernel quiet). So a wrong answer here is the
// only way to steal an address, and the code is strict about when it
// answers: only for an IP in the announced set, only on the interface the
// IP is announced on, only to well-formed requests, and (for ARP) only to
// frames addressed to broadcast or to this interface's MAC, because a raw
// socket also sees frames meant for other hosts.
//
// For IPv6 it does all that neighbor discovery asks of an address owner
// (RFC 4861), not only the first resolution: it answers solicitations
// sent to the solicited-node group and also the unicast ones that a
// client, switch or router sends to the IP itself at this node's MAC to
// confirm a cached entry (neighbor unreachability detection); without an
// answer to those the asker drops the entry and traffic stalls until it
// resolves again (MetalLB #2920). Answers carry the Solicited and Override
// flags and the target link-layer address, and leave from an address of
// the interface they are sent on, of the destination's scope (source.go).
//
// The decision for one received packet is a pure function (arpReply,
// ndpReply) so that it can be table-tested and fuzzed; the sockets around
// it only move bytes.
//
// One Announcer serves every interface. Per interface it keeps one raw ARP
// socket and one ICMPv6 socket, each read by one goroutine, and the set of
// announced IPs is swapped atomically, so the number of goroutines does not
// grow with the number of IPs.
package layer2
