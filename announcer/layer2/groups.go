package layer2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv6"
)

// groupsPerSocket caps the multicast memberships one socket holds. The
// kernel charges each membership to the socket's option memory
// (net.core.optmem_max): with the 128 KiB default of current kernels one
// socket fails at about 2,300 groups, with the 20 KiB of older ones at a
// few hundred. Every announced IPv6 address needs its own solicited-node
// group (they differ in the low 24 bits), so thousands of IPv6 Services
// need several sockets.
const groupsPerSocket = 250

// groupConn is a socket that holds multicast memberships.
type groupConn interface {
	JoinGroup(ifi *net.Interface, group net.Addr) error
	LeaveGroup(ifi *net.Interface, group net.Addr) error
	Close() error
}

// listenGroups opens a UDP socket used only to hold memberships. A
// membership makes the interface accept the group's packets for every
// socket, so the NDP socket, bound to the unspecified address, receives
// the solicitations without joining anything itself. A UDP socket on an
// ephemeral port receives nothing else.
func listenGroups() (groupConn, error) {
	c, err := net.ListenPacket("udp6", "[::]:0")
	if err != nil {
		return nil, err
	}
	return ipv6.NewPacketConn(c), nil
}

// memberships keeps an interface's solicited-node group memberships,
// spread over as many sockets as needed.
type memberships struct {
	ifi    *net.Interface
	listen func() (groupConn, error)
	socks  []*groupSocket
	of     map[netip.Addr]*groupSocket
}

type groupSocket struct {
	conn groupConn
	n    int
}

func newMemberships(ifi *net.Interface, listen func() (groupConn, error)) *memberships {
	return &memberships{ifi: ifi, listen: listen, of: map[netip.Addr]*groupSocket{}}
}

// set makes the memberships exactly want. Groups are left before new ones
// are joined, so a socket's room is reused; a socket left empty is closed.
func (m *memberships) set(want map[netip.Addr]bool) error {
	for g, s := range m.of {
		if want[g] {
			continue
		}
		// A failed leave leaves the membership in place: the socket
		// then holds one more group than counted, within the kernel's
		// margin; closing the socket drops it for good.
		_ = s.conn.LeaveGroup(m.ifi, &net.IPAddr{IP: g.AsSlice()})
		s.n--
		delete(m.of, g)
	}
	kept := m.socks[:0]
	for _, s := range m.socks {
		if s.n == 0 {
			s.conn.Close()
			continue
		}
		kept = append(kept, s)
	}
	clear(m.socks[len(kept):])
	m.socks = kept

	var errs []error
	for g := range want {
		if m.of[g] != nil {
			continue
		}
		s, err := m.room()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := s.conn.JoinGroup(m.ifi, &net.IPAddr{IP: g.AsSlice()}); err != nil {
			errs = append(errs, fmt.Errorf("joining %s: %w", g, err))
			continue
		}
		s.n++
		m.of[g] = s
	}
	return errors.Join(errs...)
}

// room returns a socket with room for one more membership.
func (m *memberships) room() (*groupSocket, error) {
	for _, s := range m.socks {
		if s.n < groupsPerSocket {
			return s, nil
		}
	}
	c, err := m.listen()
	if err != nil {
		return nil, fmt.Errorf("opening a socket for multicast memberships: %w", err)
	}
	s := &groupSocket{conn: c}
	m.socks = append(m.socks, s)
	return s, nil
}

// close drops every membership by closing the sockets.
func (m *memberships) close() {
	for _, s := range m.socks {
		s.conn.Close()
	}
	m.socks = nil
	clear(m.of)
}
