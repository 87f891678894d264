// Package owner chooses which node announces a layer 2 IP.
//
// Every announcer computes the owner of every IP on its own, from the same
// inputs: the IP, the set of live, eligible node names (the candidates),
// and which candidates say they serve the IP now (their claims). No
// coordinator is needed beyond agreeing on those inputs, which membership
// gossip and the Kubernetes API provide; after a partition heals, the views
// merge and every node arrives at the same owner again.
//
// # Rendezvous hashing
//
// The base choice, Pick, is rendezvous (highest-random-weight) hashing:
// each node gets a pseudo-random score for the IP and the highest score
// wins. This spreads IPs evenly across nodes and, when a node leaves,
// moves only the IPs that node owned (everyone else's scores are
// unchanged); when a node joins it wins only the IPs for which it now has
// the highest score.
//
// The score function is part of the protocol between announcers: two
// versions running side by side during a rolling update must pick the same
// owner. Never change it.
//
// # No forced failback: sticky claims
//
// Rendezvous hashing alone gives a returning node its IPs back at once.
// That is a second move within seconds of the first, and every long-lived
// connection through the VIP (a database session, a websocket) breaks
// twice. Decide therefore adds one rule in front of Pick:
//
//  1. The claimants of an IP are the candidates that claim it: that
//     announced it at their last pass, as their claim record says (Record,
//     below). A node's own claims are what it announces.
//  2. If there are claimants, the owner is the claimant with the highest
//     rendezvous score: Pick over the claimants only.
//  3. Otherwise the owner is Pick over all candidates.
//
// So an IP stays where it is while its holder is a candidate (alive,
// eligible, able to serve, in the pool's agreeing group), whoever else
// joins. It moves only when its holder stops being a candidate (failover,
// graceful leave, a label or pool change that excludes it), and then to the
// rendezvous winner among the remaining candidates, exactly as before. A
// new IP has no claimants and goes to the rendezvous winner among all
// candidates, the returned node included: new Services still spread
// evenly.
//
// # Agreement without an arbiter
//
// The rule is a pure function of (candidates, claims), so nodes that hold
// the same inputs agree. Claims can differ between nodes only while a
// record is in flight, and the rule is built so that such a difference
// never makes two nodes announce where one did:
//
//   - Keeping needs nothing: a holder keeps its IP unless it sees a
//     claimant with a higher score (rule 2). Other nodes never have to know
//     of a claim for the holder to keep it.
//   - Taking over an IP that the node does not announce yet needs the
//     current claim record of every other candidate (Input.Known). A node
//     that lacks one waits (Outcome.Wait). This is what protects a
//     returning node: it learns the others' records (they reach it on join,
//     see below) before it may take anything, and then sees the holder's
//     claim and takes nothing. A failover is not delayed by it: the
//     survivors hold each other's records already.
//   - Two claimants of one IP (the two sides of a healed partition, or two
//     nodes that each took the IP while their member views differed) are
//     resolved by rule 2 on every node alike: the higher score keeps it,
//     the other withdraws as soon as it holds the winner's record. That is
//     one move at the heal, the least there can be; until the records
//     cross, both answer, as they did during the partition (the
//     split-brain guard, package quorum, keeps the minority side silent in
//     the first place).
//   - A claim counts only while its node is a candidate. A claimant that
//     becomes ineligible, unservable, leaves or dies stops counting on
//     every node at the moment that node stops counting it as a candidate,
//     which is today's failover path unchanged.
//
// # Claim records
//
// A Record is one node's claims: every IP it announces, with a generation
// (its process's start time, so that a restarted node's records supersede
// those of its earlier life) and a sequence number that grows with every
// change. Records travel first hand only: each node sends its own record
// to every member when it changes, to a member that joins (asking for the
// member's record in return if it holds none, as after a flap that only
// one side saw), and in
// memberlist's push/pull state (which a joining node exchanges with every
// peer it joins, before its first pass). A node never forwards another's
// record, so a record it holds is always from the node's current process,
// and it forgets a node's record when the node leaves or dies. A record
// carries every IP, not a digest: 5,000 IPv4 Services are 20 kB, which one
// TCP push carries, and memberlist's 512 bytes of node metadata could not.
//
// # Rebalancing
//
// Without failback, the nodes that stayed keep the IPs of a node that came
// back; new IPs spread over all nodes, so the imbalance shrinks with churn
// but need not vanish. It is largest where every node restarts in turn: the
// node that boots or restarts last starts with no IP at all (at a cluster's
// first start the first majority of nodes shares every IP, and in a
// rolling update each restarted node's IPs go to the others).
//
// Release picks, deliberately, one IP for a loaded holder to give up: only
// when the holder has at least RebalanceMin more IPs than the IP's
// rendezvous winner and more than RebalanceFactorNum/RebalanceFactorDen
// times the winner's load, one IP per call; the caller is to call it at
// most once per rebalance interval (tens of seconds), so that moves stay
// rare and one at a time. A release is a withdrawal by the holder: its
// record drops the IP, and the winner, seeing no claimant, takes it over a
// record push later. It never makes two answerers, and it breaks that
// one IP's connections once.
//
// With --layer2-sticky-owners the controller calls it once every
// controller.RebalanceInterval (30 s, counted from the start, so never
// right after a return): a node that came back with nothing gets about one
// IP per 30 s from each loaded node, until the loads are within the
// thresholds. 5,000 IPs over three nodes, one back empty, take hours to
// even out, which is the point: each step breaks one IP's connections.
//
// # Held claims
//
// A node that the split-brain guard holds back (a contact lapse on a
// loaded machine) announces nothing for that moment; so does a node
// waiting out a settle time. If its claims were only what it announces, a
// returned node, the rendezvous winner, would take its IPs in that moment:
// a failback after all (the first lab run of
// TestNoFailbackWhenTheOwnerReturns, at load 58 on 2 cores, showed exactly
// that). So a record also carries Held: the IPs the node claimed at its
// last pass, announced or held, that it still owns but holds back now. A
// node never adds an IP to Held that it did not claim before, and drops it
// once another node's claim wins or it stops owning it.
//
// Held claims rank below announced ones: the claimants of rule 2 are the
// candidates that announce the IP, and only when there are none, the
// candidates that hold it. That keeps the two cases apart:
//
//   - A live holder held back by the guard keeps its IPs: no other node
//     announces them, so its held claim decides, and nobody takes them
//     over (the guard's silence already kept the rendezvous owners from
//     doing so; now it keeps sticky owners too). They are dark until the
//     guard lets it claim again, as they would be without stickiness.
//   - A node on the minority side of a partition is silenced and holds
//     its IPs, while the majority, which sees it dead, takes them over and
//     announces them. At the heal the announced claim outranks the held
//     one on every node: the IPs stay with the majority, and the returning
//     side drops its held claims. No move at the heal.
//
// TestGuardSilenceKeepsClaims and TestSilencedMinorityGivesUpAtHeal play
// both on simulated clusters; each fails if held claims are ignored, or
// ranked as announced ones, respectively.
//
// A record with held addresses is encoded as version 2 (see Encode); one
// without is version 1, as before.
package owner
