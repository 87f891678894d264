package membership

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
)

// Claim records (package owner) travel first hand, as the owner package's
// doc requires: each node sends only its own record, to every live member
// when it changes, to a member that joins, and as its push/pull state,
// which a joining node exchanges with every peer it joins before its first
// pass (and every node with a random peer every PushPullInterval, which
// repairs a lost send). A node forgets a member's record when the member
// leaves or dies.

// claimNotice starts the user message, or push/pull state, carrying a
// claim record; the encoded record follows. claimRequest is the same, and
// asks the receiver for its record in return: it is sent to a member whose
// record this node does not hold, such as one it had declared dead while
// the member itself saw nothing (which sends nothing on its own).
const (
	claimNotice  = 'C'
	claimRequest = 'R'
)

// claimRetry is how long a failed send waits before it is tried again.
const claimRetry = time.Second

// claims is this node's side of the claim records.
type claims struct {
	table *owner.Table
	// generation identifies this process: its start time.
	generation uint64

	mu  sync.Mutex
	own owner.Record
	// msg is own, encoded behind claimNotice.
	msg []byte
	// pending are the members that still need msg; all means every
	// live member.
	pending map[string]bool
	all     bool
	kick    chan struct{}
}

func newClaims(node string, now time.Time) *claims {
	c := &claims{
		table:      owner.NewTable(),
		generation: uint64(now.UnixNano()),
		pending:    map[string]bool{},
		kick:       make(chan struct{}, 1),
	}
	c.own = owner.NewRecord(node, c.generation, 0, nil)
	c.msg = encodeClaims(c.own)
	return c
}

func encodeClaims(r owner.Record) []byte {
	b, err := r.Encode()
	if err != nil {
		// Only a node name longer than a DNS name, which Kubernetes
		// refuses; the others then see no record and wait.
		return nil
	}
	return append([]byte{claimNotice}, b...)
}

// SetClaims publishes the IPs this node announces, and those it holds
// without announcing them (package owner, "Held claims"), if they
// changed: the others learn them within a TCP round trip.
func (m *Membership) SetClaims(ips, held []netip.Addr) {
	c := m.claims
	c.mu.Lock()
	r := owner.NewRecord(m.name, c.generation, c.own.Seq+1, ips).WithHeld(held)
	if r.Same(c.own) {
		c.mu.Unlock()
		return
	}
	c.own, c.msg, c.all = r, encodeClaims(r), true
	c.mu.Unlock()
	c.wake()
}

// Claims returns the other members' claim records as they are now.
func (m *Membership) Claims() owner.Snapshot {
	return m.claims.table.Snapshot()
}

func (c *claims) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// sendTo queues this node's record for a member that joined.
func (c *claims) sendTo(name string) {
	c.mu.Lock()
	c.pending[name] = true
	c.mu.Unlock()
	c.wake()
}

// localState is this node's push/pull state: its record.
func (c *claims) localState() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msg
}

// receiveClaims takes a record from a user message or push/pull state,
// and answers a request with this node's record; it says whether the
// table changed.
func (m *Membership) receiveClaims(b []byte) bool {
	if len(b) < 1 || b[0] != claimNotice && b[0] != claimRequest {
		return false
	}
	r, err := owner.DecodeRecord(b[1:])
	if err != nil {
		m.logger.V(2).Info("Ignoring a malformed claim record", "err", err)
		return false
	}
	if r.Node == m.name {
		return false
	}
	if b[0] == claimRequest {
		m.claims.sendTo(r.Node)
	}
	return m.claims.table.Set(r) == nil
}

// claimLoop sends this node's record to the members that need it, all
// sends of a round in parallel, each bounded by memberlist's TCPTimeout.
// A failed send is retried after claimRetry, while the member lives.
func (m *Membership) claimLoop() {
	defer m.wg.Done()
	c := m.claims
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-c.kick:
		case <-retry.C:
		}
		c.mu.Lock()
		msg, all, pending := c.msg, c.all, c.pending
		c.all, c.pending = false, map[string]bool{}
		c.mu.Unlock()
		var ask []byte
		if msg != nil {
			ask = append([]byte{claimRequest}, msg[1:]...)
		}
		var targets []memberlist.Node
		m.mu.Lock()
		for name, mb := range m.live {
			if name != m.name && (all || pending[name]) {
				targets = append(targets, memberlist.Node{Name: name, Addr: mb.addr.AsSlice(), Port: mb.port})
			}
		}
		m.mu.Unlock()
		if len(targets) == 0 || msg == nil {
			continue
		}
		ml := m.ml.Load()
		var (
			wg     sync.WaitGroup
			failMu sync.Mutex
			failed []string
		)
		for _, to := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := msg
				if _, known := c.table.Claims(to.Name, netip.Addr{}); !known {
					b = ask
				}
				if err := ml.SendReliable(&to, b); err != nil {
					m.logger.V(2).Info("Sending this node's claim record", "member", to.Name, "err", err)
					failMu.Lock()
					failed = append(failed, to.Name)
					failMu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(failed) > 0 {
			c.mu.Lock()
			for _, n := range failed {
				c.pending[n] = true
			}
			c.mu.Unlock()
			retry.Reset(claimRetry)
		}
	}
}
