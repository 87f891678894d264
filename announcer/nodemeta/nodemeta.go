// Package nodemeta is what an announcer tells the others about itself in
// memberlist's node metadata: which layer 2 pool definitions it announces
// by, and which of those pools it cannot serve right now.
//
// Every announcer reads its own copy of the cloud-config, and a config
// edit reaches the nodes at different times (kubelet syncs a ConfigMap
// volume within about a minute, the announcer reads the file every few
// seconds). Two nodes that disagree about a pool would each elect an owner
// among themselves. With the metadata every node knows which members share
// its definition of each pool (package agreement), and which members
// cannot answer for a pool (no usable interface, a failing socket), so that
// they are passed over rather than left owning a black hole.
//
// # Wire format
//
// memberlist carries at most 512 bytes (memberlist.MetaMaxSize):
//
//	byte 0       format version, 1
//	byte 1       n, the number of pools (at most MaxPools)
//	4n bytes     pool fingerprints, big endian, strictly ascending
//	⌈n/8⌉ bytes  bitmap: bit i (LSB first) set = pool i cannot be served
//
// No metadata at all is what announcers from before this format send;
// Decode returns nil for it, and package agreement treats such members as
// agreeing with every pool, which is what they assume of the others.
package nodemeta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Version is the format version written in byte 0.
const Version = 1

// MaxPools is how many pools fit into memberlist's 512 bytes. A node with
// more layer 2 pools advertises the MaxPools smallest fingerprints and
// announces no IP of the others (see Encode).
const MaxPools = 120

// Pool is one pool definition a node announces by.
type Pool struct {
	// Fingerprint identifies the pool's definition (agreement.Fingerprint).
	Fingerprint uint32
	// Unservable means the node cannot answer for the pool's IPs now.
	Unservable bool
}

// Meta is one node's metadata.
type Meta struct {
	// Pools are sorted by fingerprint, without duplicates.
	Pools []Pool
}

// Has says whether the node announces by the pool definition fp, and
// whether it can serve it.
func (m *Meta) Has(fp uint32) (has, servable bool) {
	i, ok := slices.BinarySearchFunc(m.Pools, fp, func(p Pool, fp uint32) int {
		switch {
		case p.Fingerprint < fp:
			return -1
		case p.Fingerprint > fp:
			return 1
		}
		return 0
	})
	if !ok {
		return false, false
	}
	return true, !m.Pools[i].Unservable
}

// New builds the metadata of the given pools: fingerprints to
// unservable. It keeps the MaxPools smallest fingerprints and reports how
// many it dropped.
func New(pools map[uint32]bool) (m Meta, dropped int) {
	for fp, unservable := range pools {
		m.Pools = append(m.Pools, Pool{Fingerprint: fp, Unservable: unservable})
	}
	slices.SortFunc(m.Pools, func(a, b Pool) int {
		switch {
		case a.Fingerprint < b.Fingerprint:
			return -1
		case a.Fingerprint > b.Fingerprint:
			return 1
		}
		return 0
	})
	if len(m.Pools) > MaxPools {
		dropped = len(m.Pools) - MaxPools
		m.Pools = m.Pools[:MaxPools]
	}
	return m, dropped
}

// Encode writes m in the wire format. m must come from New or Decode.
func (m Meta) Encode() []byte {
	n := len(m.Pools)
	b := make([]byte, 2+4*n+(n+7)/8)
	b[0], b[1] = Version, byte(n)
	for i, p := range m.Pools {
		binary.BigEndian.PutUint32(b[2+4*i:], p.Fingerprint)
		if p.Unservable {
			b[2+4*n+i/8] |= 1 << (i % 8)
		}
	}
	return b
}

// Decode reads metadata. Empty input is an announcer from before this
// format: nil, no error.
func Decode(b []byte) (*Meta, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != Version {
		return nil, fmt.Errorf("node metadata: version %d, want %d", b[0], Version)
	}
	if len(b) < 2 {
		return nil, errors.New("node metadata: no pool count")
	}
	n := int(b[1])
	if n > MaxPools {
		return nil, fmt.Errorf("node metadata: %d pools, at most %d", n, MaxPools)
	}
	if want := 2 + 4*n + (n+7)/8; len(b) != want {
		return nil, fmt.Errorf("node metadata: %d bytes for %d pools, want %d", len(b), n, want)
	}
	m := &Meta{Pools: make([]Pool, n)}
	for i := range n {
		fp := binary.BigEndian.Uint32(b[2+4*i:])
		if i > 0 && fp <= m.Pools[i-1].Fingerprint {
			return nil, fmt.Errorf("node metadata: pool fingerprints not strictly ascending at %d", i)
		}
		m.Pools[i] = Pool{Fingerprint: fp, Unservable: b[2+4*n+i/8]&(1<<(i%8)) != 0}
	}
	if n%8 != 0 && b[len(b)-1]>>(n%8) != 0 {
		return nil, errors.New("node metadata: bits set past the last pool")
	}
	return m, nil
}
