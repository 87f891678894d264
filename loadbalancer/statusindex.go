package loadbalancer

import (
	"net/netip"
	"slices"
	"sync"
)

// statusIndex knows which Services' status shows each address, as the
// Service informer last delivered them. It serves three purposes:
//
//   - The allocator asks it before handing out an address that no Service
//     holds: one still in another Service's status is not free. The status
//     is written after Ensure returns, so without this an address freed in
//     memory (a Service moved, was deleted, turned ClusterIP) could be given
//     to a second Service while the first one's status still shows it.
//   - It says when an address leaves the last status showing it, which is
//     when a pending Service can really have it.
//   - It keeps the set of addresses shown by two or more Services, which is
//     all the duplicate audit has to look at.
//
// It covers every Service, ours or not: an address another implementation
// wrote into a status must not be handed out either.
type statusIndex struct {
	mu     sync.RWMutex
	byAddr map[netip.Addr]map[string]struct{}
	byKey  map[string][]netip.Addr
	// multi holds the addresses shown by more than one Service.
	multi map[netip.Addr]struct{}
}

func newStatusIndex() *statusIndex {
	return &statusIndex{
		byAddr: map[netip.Addr]map[string]struct{}{},
		byKey:  map[string][]netip.Addr{},
		multi:  map[netip.Addr]struct{}{},
	}
}

// set records that key's status shows addrs (none for a deleted Service).
// It returns the addresses that no status shows any more, and whether an
// address came to be shown by two or more Services.
func (x *statusIndex) set(key string, addrs []netip.Addr) (gone []netip.Addr, shared bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.byKey[key]
	if slices.Equal(old, addrs) {
		return nil, false
	}
	for _, a := range old {
		if slices.Contains(addrs, a) {
			continue
		}
		keys := x.byAddr[a]
		delete(keys, key)
		switch len(keys) {
		case 0:
			delete(x.byAddr, a)
			gone = append(gone, a)
		case 1:
			delete(x.multi, a)
		}
	}
	for _, a := range addrs {
		if slices.Contains(old, a) {
			continue
		}
		keys := x.byAddr[a]
		if keys == nil {
			keys = make(map[string]struct{}, 1)
			x.byAddr[a] = keys
		}
		keys[key] = struct{}{}
		if len(keys) > 1 {
			x.multi[a] = struct{}{}
			shared = true
		}
	}
	if len(addrs) == 0 {
		delete(x.byKey, key)
	} else {
		x.byKey[key] = slices.Clone(addrs)
	}
	return gone, shared
}

// shownBy returns a Service other than except whose status shows addr. It
// has the signature of ipam.ShownBy.
func (x *statusIndex) shownBy(addr netip.Addr, except string) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for k := range x.byAddr[addr] {
		if k != except {
			return k, true
		}
	}
	return "", false
}

// shown reports whether any status shows addr.
func (x *statusIndex) shown(addr netip.Addr) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byAddr[addr]) > 0
}

// sharedAddrs returns the addresses two or more statuses show, sorted, with
// the keys of the Services showing each.
func (x *statusIndex) sharedAddrs() map[netip.Addr][]string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[netip.Addr][]string, len(x.multi))
	for a := range x.multi {
		keys := make([]string, 0, len(x.byAddr[a]))
		for k := range x.byAddr[a] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out[a] = keys
	}
	return out
}
