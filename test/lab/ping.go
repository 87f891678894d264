package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// pingInterval is how often Ping repeats its echo request while waiting,
// like ping's default but faster: a lab test waits for reachability, and
// the first request may be lost to a pending ARP/NDP resolution.
const pingInterval = 200 * time.Millisecond

// Ping sends ICMP echo requests from the host to dst (IPv4 or IPv6) until
// one is answered, and fails if none is within timeout. It uses a raw
// socket of the host's namespace, so it needs no ping binary.
func (h *Host) Ping(ctx context.Context, dst string, timeout time.Duration) error {
	a, err := netip.ParseAddr(dst)
	if err != nil {
		return fmt.Errorf("lab: ping: %w", err)
	}
	a = a.Unmap()
	network, reqType, replyType := "ip4:icmp", byte(8), byte(0)
	if a.Is6() {
		// The kernel fills in the ICMPv6 checksum on raw ICMPv6 sockets.
		network, reqType, replyType = "ip6:ipv6-icmp", 128, 129
	}
	var conn net.PacketConn
	if err := inNetns(h.ns, func() error {
		conn, err = net.ListenPacket(network, "")
		return err
	}); err != nil {
		return fmt.Errorf("%s: ping: %w", h.name, err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()

	// A raw socket sees every ICMP packet of the namespace; the random
	// identifier tells our replies from those of a concurrent Ping.
	id := uint16(rand.Uint32())
	to := &net.IPAddr{IP: a.AsSlice()}
	buf := make([]byte, 1500)
	var lastErr error
	for seq := uint16(1); ctx.Err() == nil; seq++ {
		msg := make([]byte, 8+16)
		msg[0] = reqType
		binary.BigEndian.PutUint16(msg[4:], id)
		binary.BigEndian.PutUint16(msg[6:], seq)
		copy(msg[8:], "cpbm-lab-ping---")
		if !a.Is6() {
			binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
		}
		if _, err := conn.WriteTo(msg, to); err != nil {
			// E.g. EHOSTUNREACH after a failed ARP resolution: keep
			// trying, the host may become reachable.
			lastErr = err
		}
		next := time.Now().Add(pingInterval)
		_ = conn.SetReadDeadline(next)
		for ctx.Err() == nil {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					lastErr = err
				}
				break
			}
			ip, ok := from.(*net.IPAddr)
			if !ok || n < 8 || buf[0] != replyType || binary.BigEndian.Uint16(buf[4:]) != id {
				continue
			}
			if fa, ok := netip.AddrFromSlice(ip.IP); ok && fa.Unmap() == a {
				return nil
			}
		}
		// Pace the requests even when a read ended early.
		if d := time.Until(next); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
	}
	if lastErr != nil {
		return fmt.Errorf("%s: no echo reply from %s within %v (last error: %v)", h.name, a, timeout, lastErr)
	}
	return fmt.Errorf("%s: no echo reply from %s within %v", h.name, a, timeout)
}

// icmpChecksum is the Internet checksum (RFC 1071) of an ICMPv4 message.
func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
