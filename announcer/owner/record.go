package owner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// Record is one node's claims: the IPs it announces, and those it holds
// without announcing them.
type Record struct {
	// Node is the node's name.
	Node string
	// Generation identifies the node's process (its start time in Unix
	// nanoseconds): a record of a later generation supersedes every
	// record of an earlier one.
	Generation uint64
	// Seq grows with every change within a generation.
	Seq uint64
	// IPs are the claimed addresses, unmapped, sorted, without
	// duplicates (NewRecord makes them so).
	IPs []netip.Addr
	// Held are addresses the node claimed at its last pass and still
	// owns, but does not announce now because it holds them back (the
	// split-brain guard silences it, or it waits for a settle time). In
	// the same canonical form, and never among IPs (WithHeld makes them
	// so). See the package doc, "Held claims".
	Held []netip.Addr
}

// NewRecord builds a record, putting ips in canonical form.
func NewRecord(node string, generation, seq uint64, ips []netip.Addr) Record {
	return Record{Node: node, Generation: generation, Seq: seq, IPs: canonical(ips)}
}

// WithHeld returns r holding held, in canonical form, without those that
// r announces.
func (r Record) WithHeld(held []netip.Addr) Record {
	r.Held = slices.DeleteFunc(canonical(held), r.Claims)
	if len(r.Held) == 0 {
		r.Held = nil
	}
	return r
}

func canonical(ips []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.Unmap().WithZone(""))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Same says whether r and o carry the same claims.
func (r Record) Same(o Record) bool {
	return slices.Equal(r.IPs, o.IPs) && slices.Equal(r.Held, o.Held)
}

// Newer says whether r supersedes old.
func (r Record) Newer(old Record) bool {
	if r.Generation != old.Generation {
		return r.Generation > old.Generation
	}
	return r.Seq > old.Seq
}

// Claims says whether r claims ip: announces it.
func (r Record) Claims(ip netip.Addr) bool {
	_, ok := slices.BinarySearchFunc(r.IPs, ip.Unmap().WithZone(""), netip.Addr.Compare)
	return ok
}

// Holds says whether r holds ip without announcing it.
func (r Record) Holds(ip netip.Addr) bool {
	_, ok := slices.BinarySearchFunc(r.Held, ip.Unmap().WithZone(""), netip.Addr.Compare)
	return ok
}

// The format versions in byte 0 of an encoded record. Version 2 adds the
// held addresses; a record without any is written as version 1, which
// announcers from before held claims read, so a rolling update mixes the
// two without losing records except while a node holds IPs back.
const (
	recordVersion     = 1
	recordVersionHeld = 2
)

// Limits of the wire format, so that a corrupt or hostile length cannot
// make Decode allocate much.
const (
	// MaxNodeName is the longest node name (a DNS subdomain).
	MaxNodeName = 253
	// MaxRecordIPs is the most addresses a record carries; a node never
	// announces more (a /16 of Services is far beyond any cluster).
	MaxRecordIPs = 1 << 16
)

// Encode writes r:
//
//	byte 0        version, 1
//	8 bytes       generation, big endian
//	8 bytes       seq, big endian
//	1 byte        length of the node name, then the name
//	4 bytes       number of IPv4 addresses, then 4 bytes each
//	4 bytes       number of IPv6 addresses, then 16 bytes each
//
// and, in version 2 only, the held addresses the same way: the IPv4 count
// and addresses, then the IPv6 ones.
//
// Addresses are in ascending order, IPv4 before IPv6, as NewRecord sorts
// them. 5,000 IPv4 addresses take 20 kB. A node name longer than
// MaxNodeName, or an empty one, is an error.
func (r Record) Encode() ([]byte, error) {
	if r.Node == "" || len(r.Node) > MaxNodeName {
		return nil, fmt.Errorf("claim record: node name %q is empty or longer than %d bytes", r.Node, MaxNodeName)
	}
	b := make([]byte, 0, 1+16+1+len(r.Node)+16+4*len(r.IPs)+4*len(r.Held))
	version := byte(recordVersion)
	if len(r.Held) > 0 {
		version = recordVersionHeld
	}
	b = append(b, version)
	b = binary.BigEndian.AppendUint64(b, r.Generation)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = append(b, byte(len(r.Node)))
	b = append(b, r.Node...)
	b = appendAddrs(b, r.IPs)
	if version == recordVersionHeld {
		b = appendAddrs(b, r.Held)
	}
	return b, nil
}

// appendAddrs writes the IPv4 count and addresses of ips, then the IPv6.
func appendAddrs(b []byte, ips []netip.Addr) []byte {
	for _, v4 := range []bool{true, false} {
		n := 0
		for _, ip := range ips {
			if ip.Is4() == v4 {
				n++
			}
		}
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		for _, ip := range ips {
			if ip.Is4() == v4 {
				b = append(b, ip.AsSlice()...)
			}
		}
	}
	return b
}

// DecodeRecord reads an encoded record. It refuses anything Encode would
// not write: another version, a bad length, addresses out of order or
// duplicated, an IPv4-mapped address among the IPv6 ones, trailing bytes.
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	if len(b) < 1+16+1 {
		return r, fmt.Errorf("claim record: %d bytes, want at least 18", len(b))
	}
	version := b[0]
	if version != recordVersion && version != recordVersionHeld {
		return r, fmt.Errorf("claim record: version %d, want %d or %d", version, recordVersion, recordVersionHeld)
	}
	r.Generation = binary.BigEndian.Uint64(b[1:])
	r.Seq = binary.BigEndian.Uint64(b[9:])
	n := int(b[17])
	b = b[18:]
	if n == 0 || n > MaxNodeName || len(b) < n {
		return r, fmt.Errorf("claim record: node name of %d bytes with %d left", n, len(b))
	}
	r.Node, b = string(b[:n]), b[n:]
	var err error
	if r.IPs, b, err = decodeAddrs(r.Node, "", b); err != nil {
		return r, err
	}
	if version == recordVersionHeld {
		if r.Held, b, err = decodeAddrs(r.Node, "held ", b); err != nil {
			return r, err
		}
		if len(r.Held) == 0 {
			return r, fmt.Errorf("claim record of %s: version %d without held addresses", r.Node, version)
		}
		for _, ip := range r.Held {
			if r.Claims(ip) {
				return r, fmt.Errorf("claim record of %s: %s both announced and held", r.Node, ip)
			}
		}
	}
	if len(b) != 0 {
		return r, fmt.Errorf("claim record of %s: %d trailing bytes", r.Node, len(b))
	}
	return r, nil
}

// decodeAddrs reads what appendAddrs writes, and returns the rest of b.
// what names the list in errors.
func decodeAddrs(node, what string, b []byte) ([]netip.Addr, []byte, error) {
	var out []netip.Addr
	for _, size := range []int{4, 16} {
		if len(b) < 4 {
			return nil, nil, fmt.Errorf("claim record of %s: no %sIPv%d count", node, what, map[int]int{4: 4, 16: 6}[size])
		}
		count := binary.BigEndian.Uint32(b)
		b = b[4:]
		if count > MaxRecordIPs || uint64(len(b)) < uint64(count)*uint64(size) {
			return nil, nil, fmt.Errorf("claim record of %s: %d %saddresses of %d bytes with %d bytes left", node, count, what, size, len(b))
		}
		for range count {
			var ip netip.Addr
			if size == 4 {
				ip = netip.AddrFrom4([4]byte(b[:4]))
			} else {
				ip = netip.AddrFrom16([16]byte(b[:16]))
				if ip.Is4In6() {
					return nil, nil, fmt.Errorf("claim record of %s: IPv4-mapped address %s among the %sIPv6 ones", node, ip, what)
				}
			}
			b = b[size:]
			if len(out) > 0 && out[len(out)-1].Compare(ip) >= 0 {
				return nil, nil, fmt.Errorf("claim record of %s: %s%s after %s, want ascending addresses", node, what, ip, out[len(out)-1])
			}
			out = append(out, ip)
		}
	}
	return out, b, nil
}

// Table holds the latest record of each other node, received first hand.
// It is safe for concurrent use: the transport writes it from memberlist's
// goroutines and the controller reads it in its pass.
type Table struct {
	mu      sync.RWMutex
	records map[string]Record
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{records: map[string]Record{}}
}

// errStale is returned by Set for a record that is not newer.
var errStale = errors.New("claim record is not newer than the one held")

// Set keeps r if it is newer than the record held for its node, and says
// why not otherwise.
func (t *Table) Set(r Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.records[r.Node]; ok && !r.Newer(old) {
		return errStale
	}
	t.records[r.Node] = r
	return nil
}

// Forget drops node's record: it left or died, and whatever it claimed
// is void until its next process sends a record.
func (t *Table) Forget(node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.records, node)
}

// Claims implements Claims.
func (t *Table) Claims(node string, ip netip.Addr) (claims, known bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r, ok := t.records[node]
	if !ok {
		return false, false
	}
	return r.Claims(ip), true
}

// Holds implements Claims.
func (t *Table) Holds(node string, ip netip.Addr) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.records[node].Holds(ip)
}

// Snapshot returns a copy of the table, for one pass: the decisions of a
// pass must all see the same records.
func (t *Table) Snapshot() Snapshot {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := make(Snapshot, len(t.records))
	for n, r := range t.records {
		s[n] = r
	}
	return s
}

// Snapshot is a frozen table; records are shared with the table and
// never modified.
type Snapshot map[string]Record

// Load returns how many IPs node claims, and whether its record is
// known.
func (s Snapshot) Load(node string) (int, bool) {
	r, ok := s[node]
	return len(r.IPs), ok
}

// Claims implements Claims.
func (s Snapshot) Claims(node string, ip netip.Addr) (claims, known bool) {
	r, ok := s[node]
	if !ok {
		return false, false
	}
	return r.Claims(ip), true
}

// Holds implements Claims.
func (s Snapshot) Holds(node string, ip netip.Addr) bool {
	return s[node].Holds(ip)
}

var (
	_ Claims = (*Table)(nil)
	_ Claims = Snapshot(nil)
)
