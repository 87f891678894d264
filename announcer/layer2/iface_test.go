package layer2

import (
	"net/netip"
	"testing"
)

func TestInterfaceWithAddr(t *testing.T) {
	name, err := InterfaceWithAddr(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Skipf("no loopback address here: %v", err)
	}
	if name != "lo" {
		t.Errorf("127.0.0.1 is on %q, want lo", name)
	}
	if _, err := InterfaceWithAddr(netip.MustParseAddr("192.0.2.254")); err == nil {
		t.Error("found an interface for an address nobody has")
	}
}
