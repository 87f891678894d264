package owner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// Record is one node's claims: the IPs it announces.
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
}

// NewRecord builds a record, putting ips in canonical form.
func NewRecord(node string, generation, seq uint64, ips []netip.Addr) Record {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.Unmap().WithZone(""))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return Record{Node: node, Generation: generation, Seq: seq, IPs: slices.Compact(out)}
}

// Newer says whether r supersedes old.
func (r Record) Newer(old Record) bool {
	if r.Generation != old.Generation {
		return r.Generation > old.Generation
	}
	return r.Seq > old.Seq
}

// Claims says whether r claims ip.
func (r Record) Claims(ip netip.Addr) bool {
	_, ok := slices.BinarySearchFunc(r.IPs, ip.Unmap().WithZone(""), netip.Addr.Compare)
	return ok
}

// recordVersion is the format version in byte 0 of an encoded record.
const recordVersion = 1

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
// Addresses are in ascending order, IPv4 before IPv6, as NewRecord sorts
// them. 5,000 IPv4 addresses take 20 kB. A node name longer than
// MaxNodeName, or an empty one, is an error.
func (r Record) Encode() ([]byte, error) {
	if r.Node == "" || len(r.Node) > MaxNodeName {
		return nil, fmt.Errorf("claim record: node name %q is empty or longer than %d bytes", r.Node, MaxNodeName)
	}
	var v4, v6 []netip.Addr
	for _, ip := range r.IPs {
		if ip.Is4() {
			v4 = append(v4, ip)
		} else {
			v6 = append(v6, ip)
		}
	}
	b := make([]byte, 0, 1+16+1+len(r.Node)+8+4*len(v4)+16*len(v6))
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, r.Generation)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = append(b, byte(len(r.Node)))
	b = append(b, r.Node...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(v4)))
	for _, ip := range v4 {
		a := ip.As4()
		b = append(b, a[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(v6)))
	for _, ip := range v6 {
		a := ip.As16()
		b = append(b, a[:]...)
	}
	return b, nil
}

// DecodeRecord reads an encoded record. It refuses anything Encode would
// not write: another version, a bad length, addresses out of order or
// duplicated, an IPv4-mapped address among the IPv6 ones, trailing bytes.
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	if len(b) < 1+16+1 {
		return r, fmt.Errorf("claim record: %d bytes, want at least 18", len(b))
	}
	if b[0] != recordVersion {
		return r, fmt.Errorf("claim record: version %d, want %d", b[0], recordVersion)
	}
	r.Generation = binary.BigEndian.Uint64(b[1:])
	r.Seq = binary.BigEndian.Uint64(b[9:])
	n := int(b[17])
	b = b[18:]
	if n == 0 || n > MaxNodeName || len(b) < n {
		return r, fmt.Errorf("claim record: node name of %d bytes with %d left", n, len(b))
	}
	r.Node, b = string(b[:n]), b[n:]
	for _, size := range []int{4, 16} {
		if len(b) < 4 {
			return r, fmt.Errorf("claim record of %s: no IPv%d count", r.Node, map[int]int{4: 4, 16: 6}[size])
		}
		count := binary.BigEndian.Uint32(b)
		b = b[4:]
		if count > MaxRecordIPs || uint64(len(b)) < uint64(count)*uint64(size) {
			return r, fmt.Errorf("claim record of %s: %d addresses of %d bytes with %d bytes left", r.Node, count, size, len(b))
		}
		for range count {
			var ip netip.Addr
			if size == 4 {
				ip = netip.AddrFrom4([4]byte(b[:4]))
			} else {
				ip = netip.AddrFrom16([16]byte(b[:16]))
				if ip.Is4In6() {
					return r, fmt.Errorf("claim record of %s: IPv4-mapped address %s among the IPv6 ones", r.Node, ip)
				}
			}
			b = b[size:]
			if len(r.IPs) > 0 && r.IPs[len(r.IPs)-1].Compare(ip) >= 0 {
				return r, fmt.Errorf("claim record of %s: %s after %s, want ascending addresses", r.Node, ip, r.IPs[len(r.IPs)-1])
			}
			r.IPs = append(r.IPs, ip)
		}
	}
	if len(b) != 0 {
		return r, fmt.Errorf("claim record of %s: %d trailing bytes", r.Node, len(b))
	}
	return r, nil
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

var (
	_ Claims = (*Table)(nil)
	_ Claims = Snapshot(nil)
)
