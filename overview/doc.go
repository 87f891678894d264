// Package overview is the `kubectl baremetal` plugin: one screen that
// answers "which pools are full, and who announces my IP?" from the
// Kubernetes API alone.
//
// It reads three things and computes nothing the announcers decide:
//   - the cloud-config ConfigMap (baremetal-system/baremetal-cloud-config,
//     parsed by package config): the pools, their sizes, the BGP peers and
//     their node-selectors;
//   - every Service: the LoadBalancer IPs of Services without a
//     loadBalancerClass (ours), counted against the pools;
//   - the condition the announcers keep on each Service (package
//     servicestatus): pool, protocol and who announces each IP, or why
//     nobody does.
//
// BGP session state lives in the announcers' memory (and their metrics),
// not in any API object, so the screen says which peers each node is
// configured for and says plainly that session state is not in the API.
package overview
