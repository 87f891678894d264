package controller

import (
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
)

// claimer is a Members that carries the nodes' claim records (package
// membership): which layer 2 IPs each announces.
type claimer interface {
	Claims() owner.Snapshot
}

// SetStickyOwners makes a layer 2 IP stay with the node that announces it
// while that node remains a candidate, instead of going back to its
// rendezvous winner when that one returns (package owner: no forced
// failback). It needs a Members that carries claim records, and every
// announcer of the cluster must run with the same setting: a node that
// picks by rendezvous answers alongside a holder that keeps by claim. Call
// it before Run.
func (c *Controller) SetStickyOwners(on bool) {
	c.guard.sticky = on
}
