package owner

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestNewRecordCanonical(t *testing.T) {
	r := NewRecord("node1", 7, 3, addrs("2001:db8::1", "::ffff:203.0.113.2", "203.0.113.1", "203.0.113.2", "fe80::1%eth0"))
	want := addrs("203.0.113.1", "203.0.113.2", "2001:db8::1", "fe80::1")
	if !slices.Equal(r.IPs, want) {
		t.Fatalf("IPs = %v, want %v", r.IPs, want)
	}
	if !r.Claims(netip.MustParseAddr("::ffff:203.0.113.1")) || r.Claims(netip.MustParseAddr("203.0.113.3")) {
		t.Errorf("Claims of a mapped or absent address is wrong")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	var many []netip.Addr
	for i := range 5000 {
		many = append(many, nthIP(i))
	}
	tests := []Record{
		NewRecord("n", 0, 0, nil),
		NewRecord("node1", 1764672000000000000, 42, addrs("203.0.113.200", "2001:db8:1::200")),
		NewRecord(strings.Repeat("a", MaxNodeName), ^uint64(0), ^uint64(0), many),
		NewRecord("node2", 7, 8, addrs("203.0.113.200")).WithHeld(addrs("203.0.113.200", "2001:db8:1::201", "::ffff:203.0.113.9")),
	}
	for _, r := range tests {
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRecord(b)
		if err != nil {
			t.Fatalf("decoding %s's record: %v", r.Node, err)
		}
		if got.Node != r.Node || got.Generation != r.Generation || got.Seq != r.Seq || !got.Same(r) {
			t.Fatalf("round trip of %s's record changed it", r.Node)
		}
	}
	b, _ := NewRecord("node1", 1, 1, many).Encode()
	if len(b) > 20100 {
		t.Errorf("5,000 IPv4 addresses take %d bytes, want about 20 kB", len(b))
	}
}

func TestEncodeRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("a", MaxNodeName+1)} {
		if _, err := NewRecord(name, 1, 1, nil).Encode(); err == nil {
			t.Errorf("Encode accepted a node name of %d bytes", len(name))
		}
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	good, _ := NewRecord("node1", 1, 2, addrs("203.0.113.1", "203.0.113.2", "2001:db8::1")).Encode()
	header := func(name string) []byte {
		b := []byte{recordVersion}
		b = binary.BigEndian.AppendUint64(b, 1)
		b = binary.BigEndian.AppendUint64(b, 2)
		b = append(b, byte(len(name)))
		return append(b, name...)
	}
	withV4 := func(ips ...[4]byte) []byte {
		b := binary.BigEndian.AppendUint32(header("node1"), uint32(len(ips)))
		for _, ip := range ips {
			b = append(b, ip[:]...)
		}
		return b
	}
	mapped := netip.MustParseAddr("::ffff:203.0.113.1").As16()
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "0 bytes"},
		{"future version", append([]byte{3}, good[1:]...), "version 3"},
		{"version 2 without held addresses", append(append([]byte{2}, good[1:]...), 0, 0, 0, 0, 0, 0, 0, 0), "without held addresses"},
		{"version 2 without a held count", append([]byte{2}, good[1:]...), "no held IPv4 count"},
		{"held and announced", append(append([]byte{2}, good[1:]...), 0, 0, 0, 1, 203, 0, 113, 1, 0, 0, 0, 0), "both announced and held"},
		{"empty name", append(header(""), 0, 0, 0, 0, 0, 0, 0, 0), "node name of 0 bytes"},
		{"name longer than the rest", append(header("node1")[:18], 'a'), "node name of 5 bytes"},
		{"no v4 count", header("node1"), "no IPv4 count"},
		{"v4 count beyond the data", binary.BigEndian.AppendUint32(header("node1"), 3), "3 addresses of 4 bytes"},
		{"huge v4 count", binary.BigEndian.AppendUint32(header("node1"), 1<<31), "2147483648 addresses"},
		{"no v6 count", withV4([4]byte{203, 0, 113, 1}), "no IPv6 count"},
		{"descending", binary.BigEndian.AppendUint32(withV4([4]byte{203, 0, 113, 2}, [4]byte{203, 0, 113, 1}), 0), "want ascending"},
		{"duplicate", binary.BigEndian.AppendUint32(withV4([4]byte{203, 0, 113, 1}, [4]byte{203, 0, 113, 1}), 0), "want ascending"},
		{"mapped among v6", append(binary.BigEndian.AppendUint32(withV4(), 1), mapped[:]...), "IPv4-mapped"},
		{"trailing", append(slices.Clone(good), 0), "1 trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRecord(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DecodeRecord = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestTable(t *testing.T) {
	tb := NewTable()
	ip := netip.MustParseAddr("203.0.113.1")
	steps := []struct {
		name       string
		set        *Record
		forget     string
		wantErr    bool
		wantClaims bool
		wantKnown  bool
	}{
		{name: "unknown at first", wantKnown: false},
		{name: "a record", set: &Record{Node: "n1", Generation: 5, Seq: 1, IPs: addrs("203.0.113.1")}, wantClaims: true, wantKnown: true},
		{name: "an older seq is refused", set: &Record{Node: "n1", Generation: 5, Seq: 0}, wantErr: true, wantClaims: true, wantKnown: true},
		{name: "the same seq is refused", set: &Record{Node: "n1", Generation: 5, Seq: 1}, wantErr: true, wantClaims: true, wantKnown: true},
		{name: "a newer seq replaces it", set: &Record{Node: "n1", Generation: 5, Seq: 2}, wantKnown: true},
		{name: "an earlier life is refused", set: &Record{Node: "n1", Generation: 4, Seq: 9, IPs: addrs("203.0.113.1")}, wantErr: true, wantKnown: true},
		{name: "forgotten when it leaves", forget: "n1"},
		{name: "a restarted node's record", set: &Record{Node: "n1", Generation: 6, Seq: 0, IPs: addrs("203.0.113.1")}, wantClaims: true, wantKnown: true},
	}
	for _, st := range steps {
		if st.set != nil {
			if err := tb.Set(*st.set); (err != nil) != st.wantErr {
				t.Fatalf("%s: Set = %v", st.name, err)
			} else if err != nil && !errors.Is(err, errStale) {
				t.Fatalf("%s: Set = %v, want errStale", st.name, err)
			}
		}
		if st.forget != "" {
			tb.Forget(st.forget)
		}
		claims, known := tb.Claims("n1", ip)
		if claims != st.wantClaims || known != st.wantKnown {
			t.Fatalf("%s: Claims = %v, %v; want %v, %v", st.name, claims, known, st.wantClaims, st.wantKnown)
		}
		sc, sk := tb.Snapshot().Claims("n1", ip)
		if sc != claims || sk != known {
			t.Fatalf("%s: the snapshot disagrees with the table", st.name)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []Record{
		NewRecord("node1", 1, 1, nil),
		NewRecord("node1", 1764672000000000000, 3, addrs("203.0.113.200", "203.0.113.201", "2001:db8:1::200")),
		NewRecord("node1", 1, 4, addrs("203.0.113.200")).WithHeld(addrs("203.0.113.201", "2001:db8:1::200")),
	} {
		b, _ := r.Encode()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		// What decodes is canonical: it encodes to the same bytes.
		again, err := r.Encode()
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode then encode changed %x into %x", b, again)
		}
	})
}
