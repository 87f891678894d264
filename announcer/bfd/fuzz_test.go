package bfd

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, that what it accepts passes
// the checks of RFC 5880 6.8.6 and marshals back to the same 24 bytes,
// and that a session fed the packet stays within its states. The seed
// corpus (testdata/fuzz/FuzzParse) holds packets as FRR's bfdd sends them
// in each state, a Poll and a Final, and broken ones.
func FuzzParse(f *testing.F) {
	for _, p := range []Packet{
		{Version: Version, State: Down, DetectMult: 3, Length: PacketLen, MyDiscriminator: 1, DesiredMinTxInterval: 1000000, RequiredMinRxInterval: 100000, RequiredMinEchoRx: 50000},
		{Version: Version, State: Up, Poll: true, DetectMult: 3, Length: PacketLen, MyDiscriminator: 1, YourDiscriminator: 2, DesiredMinTxInterval: 100000, RequiredMinRxInterval: 100000},
	} {
		f.Add(p.Marshal(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if p.Version != Version || p.DetectMult == 0 || p.MyDiscriminator == 0 || p.Multipoint || p.Auth ||
			int(p.Length) < PacketLen || int(p.Length) > len(b) ||
			(p.YourDiscriminator == 0 && p.State != Down && p.State != AdminDown) {
			t.Fatalf("Parse accepted a packet RFC 5880 6.8.6 discards: %+v", p)
		}
		out := p.Marshal(nil)
		// Marshal writes length 24; the rest is the same bytes.
		in := bytes.Clone(b[:PacketLen])
		in[3] = PacketLen
		if !bytes.Equal(out, in) {
			t.Fatalf("Marshal(Parse(b)) = %x, want %x", out, in)
		}
		s := NewSession(Config{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 3}, p.YourDiscriminator|1)
		now := time.Unix(0, 0)
		tr, _ := s.Receive(p, now)
		if tr.To > Up || s.TxInterval() < 0 {
			t.Fatalf("session state %v, interval %v", tr.To, s.TxInterval())
		}
		s.Expire(now.Add(time.Hour))
		if s.State() == Up || s.State() == Init {
			t.Fatalf("session still %v after its detection time", s.State())
		}
	})
}
