package bfd

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPacketRoundTrip(t *testing.T) {
	p := Packet{
		Version: Version, Diag: DiagNeighborDown, State: Up, Poll: true, CPI: true, DetectMult: 3, Length: PacketLen,
		MyDiscriminator: 0x01020304, YourDiscriminator: 0xa0b0c0d0,
		DesiredMinTxInterval: 100000, RequiredMinRxInterval: 300000, RequiredMinEchoRx: 50000,
	}
	b := p.Marshal(nil)
	if len(b) != PacketLen {
		t.Fatalf("Marshal: %d bytes", len(b))
	}
	// Version 1, diag 3; Up (3<<6) | P | C; mult 3; length 24.
	if got := hex.EncodeToString(b[:4]); got != "23e80318" {
		t.Errorf("header %s, want 23e80318", got)
	}
	q, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if q != p {
		t.Errorf("round trip:\n got %+v\nwant %+v", q, p)
	}
}

// TestParseRefuses: every check of RFC 5880 6.8.6 that needs no session
// refuses the packet, and the error names the field and the value.
func TestParseRefuses(t *testing.T) {
	good := Packet{Version: Version, State: Down, DetectMult: 3, Length: PacketLen, MyDiscriminator: 7}
	tests := []struct {
		name   string
		mutate func(*Packet)
		raw    func([]byte) []byte
		want   string
	}{
		{name: "short", raw: func(b []byte) []byte { return b[:23] }, want: "23 bytes"},
		{name: "version 2", raw: func(b []byte) []byte { b[0] = 2<<5 | b[0]&0x1f; return b }, want: "version 2"},
		{name: "length below 24", raw: func(b []byte) []byte { b[3] = 20; return b }, want: "length field 20"},
		{name: "length past the end", raw: func(b []byte) []byte { b[3] = 40; return b }, want: "length field 40, but the packet has 24 bytes"},
		{name: "detect mult 0", mutate: func(p *Packet) { p.DetectMult = 0 }, want: "detect multiplier 0"},
		{name: "multipoint", mutate: func(p *Packet) { p.Multipoint = true }, want: "multipoint"},
		{name: "my discriminator 0", mutate: func(p *Packet) { p.MyDiscriminator = 0 }, want: "my discriminator 0"},
		{name: "your discriminator 0 while Up", mutate: func(p *Packet) { p.State = Up }, want: "your discriminator 0 in state Up"},
		{name: "your discriminator 0 while Init", mutate: func(p *Packet) { p.State = Init }, want: "in state Init"},
		{name: "authentication", mutate: func(p *Packet) { p.Auth = true }, raw: func(b []byte) []byte { b[3] = 26; return append(b, 1, 2) }, want: "authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			if tt.mutate != nil {
				tt.mutate(&p)
			}
			b := p.Marshal(nil)
			if tt.raw != nil {
				b = tt.raw(b)
			}
			_, err := Parse(b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want an error with %q", err, tt.want)
			}
		})
	}
	if _, err := Parse(good.Marshal(nil)); err != nil {
		t.Fatalf("good packet: %v", err)
	}
	p := good
	p.Auth = true
	b := p.Marshal(nil)
	b[3] = 26
	if _, err := Parse(append(b, 1, 2)); !errors.Is(err, ErrAuth) {
		t.Errorf("auth packet: %v, want ErrAuth", err)
	}
}

func TestMicros(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want uint32
	}{{0, 0}, {-time.Second, 0}, {100 * time.Millisecond, 100000}, {2 * time.Hour, 1<<32 - 1}} {
		if got := micros(tt.d); got != tt.want {
			t.Errorf("micros(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}
