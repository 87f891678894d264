package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// State is a session state (RFC 5880 4.1, the Sta field).
type State uint8

// The session states.
const (
	AdminDown State = 0
	Down      State = 1
	Init      State = 2
	Up        State = 3
)

func (s State) String() string {
	switch s {
	case AdminDown:
		return "AdminDown"
	case Down:
		return "Down"
	case Init:
		return "Init"
	case Up:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Diag is the diagnostic code of a packet: why the sender's session last
// left Up (RFC 5880 4.1).
type Diag uint8

// The diagnostic codes of RFC 5880.
const (
	DiagNone                  Diag = 0
	DiagControlDetectExpired  Diag = 1
	DiagEchoFailed            Diag = 2
	DiagNeighborDown          Diag = 3
	DiagForwardingPlaneReset  Diag = 4
	DiagPathDown              Diag = 5
	DiagConcatenatedPathDown  Diag = 6
	DiagAdministrativelyDown  Diag = 7
	DiagReverseConcatPathDown Diag = 8
	maxDiag                   Diag = 31 // the field has 5 bits
)

var diagNames = [...]string{
	DiagNone:                  "none",
	DiagControlDetectExpired:  "control detection time expired",
	DiagEchoFailed:            "echo function failed",
	DiagNeighborDown:          "neighbor signaled session down",
	DiagForwardingPlaneReset:  "forwarding plane reset",
	DiagPathDown:              "path down",
	DiagConcatenatedPathDown:  "concatenated path down",
	DiagAdministrativelyDown:  "administratively down",
	DiagReverseConcatPathDown: "reverse concatenated path down",
}

func (d Diag) String() string {
	if int(d) < len(diagNames) {
		return diagNames[d]
	}
	return fmt.Sprintf("diag %d", uint8(d))
}

// Version is the protocol version of RFC 5880.
const Version = 1

// PacketLen is the length of a control packet without authentication,
// the only kind this package sends.
const PacketLen = 24

// Packet is a BFD control packet (RFC 5880 4.1). The intervals are in
// microseconds, as on the wire.
type Packet struct {
	Version    uint8
	Diag       Diag
	State      State
	Poll       bool
	Final      bool
	CPI        bool // control plane independent
	Auth       bool // an authentication section is present
	Demand     bool
	Multipoint bool
	DetectMult uint8
	// Length is the length the packet claims; Marshal writes PacketLen.
	Length                uint8
	MyDiscriminator       uint32
	YourDiscriminator     uint32
	DesiredMinTxInterval  uint32
	RequiredMinRxInterval uint32
	RequiredMinEchoRx     uint32
}

// Flags of the second byte.
const (
	flagPoll       = 1 << 5
	flagFinal      = 1 << 4
	flagCPI        = 1 << 3
	flagAuth       = 1 << 2
	flagDemand     = 1 << 1
	flagMultipoint = 1 << 0
)

// Marshal appends the packet's 24 bytes to b. Auth is written as set, but
// no authentication section is added: this package never sets it.
func (p *Packet) Marshal(b []byte) []byte {
	var flags byte
	for _, f := range []struct {
		set bool
		bit byte
	}{{p.Poll, flagPoll}, {p.Final, flagFinal}, {p.CPI, flagCPI}, {p.Auth, flagAuth}, {p.Demand, flagDemand}, {p.Multipoint, flagMultipoint}} {
		if f.set {
			flags |= f.bit
		}
	}
	b = append(b, p.Version<<5|byte(p.Diag&maxDiag), byte(p.State&3)<<6|flags, p.DetectMult, PacketLen)
	b = binary.BigEndian.AppendUint32(b, p.MyDiscriminator)
	b = binary.BigEndian.AppendUint32(b, p.YourDiscriminator)
	b = binary.BigEndian.AppendUint32(b, p.DesiredMinTxInterval)
	b = binary.BigEndian.AppendUint32(b, p.RequiredMinRxInterval)
	return binary.BigEndian.AppendUint32(b, p.RequiredMinEchoRx)
}

// ErrAuth is the error of Parse for a packet with the A bit: this package
// does not implement authentication, and RFC 5880 6.8.6 has such a packet
// discarded by a session that uses none.
var ErrAuth = errors.New("bfd: packet carries authentication, which is not configured (A bit set)")

// Parse decodes a control packet and applies the checks of RFC 5880 6.8.6
// that need no session: version 1, a length that fits, a non-zero detect
// multiplier and My Discriminator, no multipoint, and a zero Your
// Discriminator only in state Down or AdminDown. The error names the field
// and its value.
func Parse(b []byte) (Packet, error) {
	if len(b) < PacketLen {
		return Packet{}, fmt.Errorf("bfd: packet of %d bytes, shorter than the %d of a control packet", len(b), PacketLen)
	}
	p := Packet{
		Version:               b[0] >> 5,
		Diag:                  Diag(b[0] & 0x1f),
		State:                 State(b[1] >> 6),
		Poll:                  b[1]&flagPoll != 0,
		Final:                 b[1]&flagFinal != 0,
		CPI:                   b[1]&flagCPI != 0,
		Auth:                  b[1]&flagAuth != 0,
		Demand:                b[1]&flagDemand != 0,
		Multipoint:            b[1]&flagMultipoint != 0,
		DetectMult:            b[2],
		Length:                b[3],
		MyDiscriminator:       binary.BigEndian.Uint32(b[4:]),
		YourDiscriminator:     binary.BigEndian.Uint32(b[8:]),
		DesiredMinTxInterval:  binary.BigEndian.Uint32(b[12:]),
		RequiredMinRxInterval: binary.BigEndian.Uint32(b[16:]),
		RequiredMinEchoRx:     binary.BigEndian.Uint32(b[20:]),
	}
	minLen := PacketLen
	if p.Auth {
		minLen = PacketLen + 2 // the authentication type and length
	}
	switch {
	case p.Version != Version:
		return p, fmt.Errorf("bfd: version %d, want %d", p.Version, Version)
	case int(p.Length) < minLen:
		return p, fmt.Errorf("bfd: length field %d, below the minimum %d", p.Length, minLen)
	case int(p.Length) > len(b):
		return p, fmt.Errorf("bfd: length field %d, but the packet has %d bytes", p.Length, len(b))
	case p.DetectMult == 0:
		return p, errors.New("bfd: detect multiplier 0")
	case p.Multipoint:
		return p, errors.New("bfd: multipoint bit set")
	case p.MyDiscriminator == 0:
		return p, errors.New("bfd: my discriminator 0")
	case p.YourDiscriminator == 0 && p.State != Down && p.State != AdminDown:
		return p, fmt.Errorf("bfd: your discriminator 0 in state %s", p.State)
	case p.Auth:
		return p, ErrAuth
	}
	return p, nil
}

// micros converts a duration to the wire's microseconds, saturating.
func micros(d time.Duration) uint32 {
	us := d / time.Microsecond
	if us > 1<<32-1 {
		return 1<<32 - 1
	}
	if us < 0 {
		return 0
	}
	return uint32(us)
}

// fromMicros converts a wire interval to a duration.
func fromMicros(us uint32) time.Duration { return time.Duration(us) * time.Microsecond }
