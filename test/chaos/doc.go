// Package chaos is the seeded chaos suite of issue 9: it drives the real
// baremetal-cloud-controller-manager binary, two replicas with leader
// election under deploy/base's RBAC (package ccm), against a real
// kube-apiserver and etcd (package controlplane), with random operations
// and faults, and checks that no address is ever moved, dropped or
// duplicated unless a Service's own spec asks for it (contract C1).
//
// # Operations and faults
//
// One seed fixes the whole sequence: which operation, on which Service,
// with which arguments, and where the faults fall (CHAOS_SEED=<n> replays
// it; only the machine's timing differs). The operations are create,
// delete, retype (LoadBalancer <-> ClusterIP), edits of the requested IPs,
// sharing key, address-pool annotation, ports and ipFamilyPolicy, a
// "touch" that asks for nothing but makes the service controller sync the
// Service again, and edits of the watched cloud-config file: ones the CCM
// must apply (add a pool, widen or narrow one, drop one in use, swap two
// pools' ranges, flip auto-assign) and ones it must refuse (bad YAML, an
// unknown key, overlapping pools, a CIDR with host bits, a duplicate
// name). The faults are SIGKILL of the leader; SIGKILL of both replicas,
// then deletes and retypes while no CCM runs, then a restart; and SIGSTOP
// of the leader past its lease, then SIGCONT, which makes a zombie that
// still holds work in flight. Before half the leader faults a burst of
// edits that move addresses runs, so the leader dies mid-flight.
//
// # Invariants
//
// An informer feeds every Service event to the observer, which checks as
// events arrive:
//   - no two Services that do not share a key show one address, unless one
//     of them has a spec change pending (it may be about to let go);
//   - every address that appears in status was allowed to its Service by
//     some spec version since its previous status change, under some valid
//     version of the pools (or it is the address the Service asked for);
//     an address that comes back to a Service that showed it before was
//     judged the first time;
//   - an address leaves status only after the Service's "spec generation"
//     moved past the version it was given under: the generation counts
//     changes of what C1 lets move an address (type and class, requested
//     IPs, pool annotation, sharing key, ports, ipFamilies and
//     ipFamilyPolicy, deletion). A retained address is no violation; a
//     move is. A shared address may leave any member once another member
//     changed its spec since it got the address: sharing may have become
//     impossible, and after a restart status does not say who changed;
//   - the CCM does not keep writing annotations on a Service that wants no
//     load balancer (the retrier leak, hole 4): one write may race the
//     retype, a second is reported.
//
// After the operations, the suite lets the cluster settle (replicas up, a
// leader, status unchanged for a while) and checks: no deleted Service is
// left; no duplicate at all among Services that hold addresses; the
// leader's allocator state (contract C3's baremetal_allocator_state_info,
// when the binary exports it) equals the fingerprint of status; and within
// 10 s no Service waits, or lacks its PreferDualStack second family, while
// a free address of the config in effect could serve it.
//
// # Profiles
//
// The short profile (default, in `make test`) keeps about 30–50 Services
// on pools of a few dozen addresses, so pools run out, and runs 300
// operations with 13 faults. CHAOS_PROFILE=soak (`make soak`) creates
// 5,000 Services and runs 5,000 operations with 250 faults.
// CHAOS_CCM_BINARY runs another build, e.g. one from before a fix, and
// CHAOS_RESULTS names a file for the summary.
package chaos
