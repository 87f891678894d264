package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// Arping asks the LAN who has ip, from the host's eth0, and returns the MAC
// of every distinct answer that arrives within wait, in order of arrival.
// For IPv4 it sends one ARP request (like `arping -c 1`), for IPv6 one
// neighbour solicitation to the solicited-node multicast group; only
// replies to it count, not gratuitous ARP or unsolicited advertisements. Unlike the
// kernel's neighbour table, which keeps one answer, the list shows when
// two nodes answer for the same VIP. No answer is an empty list, not an
// error. It needs no arping binary.
func (h *Host) Arping(ctx context.Context, ip string, wait time.Duration) ([]net.HardwareAddr, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, fmt.Errorf("lab: arping: %w", err)
	}
	a = a.Unmap()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if a.Is4() {
		return h.arpWhoHas(ctx, a)
	}
	return h.ndpWhoHas(ctx, a)
}

func (h *Host) arpWhoHas(ctx context.Context, ip netip.Addr) ([]net.HardwareAddr, error) {
	var c *arp.Client
	// Both the interface lookup (netlink) and the packet socket must be the
	// namespace's.
	if err := inNetns(h.ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	}); err != nil {
		return nil, fmt.Errorf("%s: arping: %w", h.name, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	if err := c.Request(ip); err != nil {
		return nil, fmt.Errorf("%s: arping %s: %w", h.name, ip, err)
	}
	var macs []net.HardwareAddr
	for ctx.Err() == nil {
		p, _, err := c.Read()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			// A frame that does not parse as ARP: skip it.
			continue
		}
		// The raw socket sees every ARP frame on the wire; keep only
		// replies about ip that are addressed to us.
		if p.Operation != arp.OperationReply || p.SenderIP != ip || !bytes.Equal(p.TargetHardwareAddr, h.mac) {
			continue
		}
		macs = addMAC(macs, p.SenderHardwareAddr)
	}
	return macs, nil
}

func (h *Host) ndpWhoHas(ctx context.Context, ip netip.Addr) ([]net.HardwareAddr, error) {
	var c *ndp.Conn
	var ifi *net.Interface
	if err := inNetns(h.ns, func() error {
		var err error
		if ifi, err = net.InterfaceByName("eth0"); err != nil {
			return err
		}
		// Go resolves IPv6 zone names to indexes through one cache for
		// the whole process, filled from whichever namespace asked last,
		// and "eth0" exists in every namespace with a different index.
		// A numeric zone bypasses the cache, and ndp uses ifi.Name as the
		// zone of every address it binds and sends to.
		named := *ifi
		named.Name = strconv.Itoa(ifi.Index)
		c, _, err = ndp.Listen(&named, ndp.LinkLocal)
		return err
	}); err != nil {
		return nil, fmt.Errorf("%s: arping: %w", h.name, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	group, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return nil, err
	}
	ns := &ndp.NeighborSolicitation{
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: h.mac}},
	}
	if err := c.WriteTo(ns, nil, group); err != nil {
		return nil, fmt.Errorf("%s: neighbour solicitation for %s: %w", h.name, ip, err)
	}
	var macs []net.HardwareAddr
	for ctx.Err() == nil {
		msg, _, _, err := c.ReadFrom()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			continue
		}
		// Only answers to our solicitation: an unsolicited advertisement
		// (a takeover, to all nodes) during the wait is an announcement,
		// not an answer, as arpWhoHas leaves out gratuitous replies.
		na, ok := msg.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != ip || !na.Solicited {
			continue
		}
		for _, o := range na.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
				macs = addMAC(macs, lla.Addr)
			}
		}
	}
	return macs, nil
}

func addMAC(macs []net.HardwareAddr, m net.HardwareAddr) []net.HardwareAddr {
	for _, x := range macs {
		if bytes.Equal(x, m) {
			return macs
		}
	}
	return append(macs, append(net.HardwareAddr(nil), m...))
}
