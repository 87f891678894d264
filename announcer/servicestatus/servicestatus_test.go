package servicestatus

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	l2        = Entry{IP: netip.MustParseAddr("203.0.113.200"), Pool: "lan", Protocol: Layer2, Nodes: []string{"node1"}, Interfaces: []string{"eth0"}}
	l2Default = Entry{IP: netip.MustParseAddr("2001:db8:1::200"), Pool: "lan6", Protocol: Layer2, Nodes: []string{"node2"}}
	bgp       = Entry{IP: netip.MustParseAddr("198.51.100.7"), Pool: "edge", Protocol: BGP, Nodes: []string{"node1", "node2"}, Peers: []string{"203.0.113.1", "2001:db8:1::1"}}
	none      = Entry{IP: netip.MustParseAddr("203.0.113.201"), Pool: "lan", Protocol: Layer2, Reason: ReasonNoEligibleNode, Detail: "no live node is Ready"}
	stray     = Entry{IP: netip.MustParseAddr("192.0.2.9"), Reason: ReasonNotInPool, Detail: "the address is in no pool of the cloud-config"}
)

func TestConditionSaysWhoAnnouncesEachIP(t *testing.T) {
	tests := []struct {
		desc       string
		entries    []Entry
		wantStatus metav1.ConditionStatus
		wantReason string
		wantMsg    string
	}{{
		desc:       "layer2 owner and its interface",
		entries:    []Entry{l2},
		wantStatus: metav1.ConditionTrue, wantReason: ReasonAnnounced,
		wantMsg: "203.0.113.200 from pool lan via layer2: announced by node1 on eth0",
	}, {
		desc:       "bgp nodes and peers",
		entries:    []Entry{bgp},
		wantStatus: metav1.ConditionTrue, wantReason: ReasonAnnounced,
		wantMsg: "198.51.100.7 from pool edge via bgp: advertised by node1, node2 to 203.0.113.1, 2001:db8:1::1",
	}, {
		desc:       "dual-stack, sorted by address, default interface unnamed",
		entries:    []Entry{l2Default, l2},
		wantStatus: metav1.ConditionTrue, wantReason: ReasonAnnounced,
		wantMsg: "203.0.113.200 from pool lan via layer2: announced by node1 on eth0; 2001:db8:1::200 from pool lan6 via layer2: announced by node2 on its default interface",
	}, {
		desc:       "one IP not announced makes the condition False with its reason",
		entries:    []Entry{l2, none},
		wantStatus: metav1.ConditionFalse, wantReason: ReasonNoEligibleNode,
		wantMsg: "203.0.113.200 from pool lan via layer2: announced by node1 on eth0; 203.0.113.201 from pool lan via layer2: not announced (NoEligibleNode): no live node is Ready",
	}, {
		desc:       "an address in no pool",
		entries:    []Entry{stray},
		wantStatus: metav1.ConditionFalse, wantReason: ReasonNotInPool,
		wantMsg: "192.0.2.9: not announced (NotInPool): the address is in no pool of the cloud-config",
	}}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			c := Condition(tt.entries)
			if c.Status != tt.wantStatus || c.Reason != tt.wantReason || c.Message != tt.wantMsg {
				t.Errorf("Condition() = %s %s %q\nwant %s %s %q", c.Status, c.Reason, c.Message, tt.wantStatus, tt.wantReason, tt.wantMsg)
			}
			// The apiserver's rules for conditions, as for any object.
			c.LastTransitionTime = metav1.Now()
			if errs := metav1validation.ValidateConditions([]metav1.Condition{c}, field.NewPath("status", "conditions")); len(errs) > 0 {
				t.Errorf("invalid condition: %v", errs.ToAggregate())
			}
			got, err := Parse(c.Message)
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.Message, err)
			}
			if want := sortedByIP(tt.entries); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Parse(Message()) = %v\nwant %v", got, want)
			}
		})
	}
}

func TestDetailCannotSplitAnEntry(t *testing.T) {
	e := none
	e.Detail = "first; second"
	got, err := Parse(Message([]Entry{e, l2}))
	if err != nil || len(got) != 2 {
		t.Fatalf("Parse = %v, %v; want 2 entries", got, err)
	}
	if got[1].Detail != "first, second" {
		t.Errorf("detail = %q", got[1].Detail)
	}
}

func TestParseNamesWhatItCannotRead(t *testing.T) {
	tests := []struct {
		desc, msg, want string
	}{
		{"no separator", "203.0.113.1", `entry 0 "203.0.113.1": no ": "`},
		{"bad address", "nope from pool a via layer2: announced by n on e", `address "nope"`},
		{"no pool but announced", "203.0.113.1: announced by n on e", "must say why"},
		{"layer2 grammar", "203.0.113.1 from pool a via layer2: owned by n", `want "announced by NODE on INTERFACES"`},
		{"bgp grammar", "203.0.113.1 from pool a via bgp: announced by n on e", `want "advertised by NODES to PEERS"`},
		{"second entry", "203.0.113.1: not announced (X): y; junk", `entry 1 "junk"`},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, err := Parse(tt.msg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error = %v, want one containing %q", tt.msg, err, tt.want)
			}
		})
	}
}

func TestFind(t *testing.T) {
	conds := []metav1.Condition{{Type: "Other"}, {Type: ConditionType, Message: "m"}}
	if c := Find(conds); c == nil || c.Message != "m" {
		t.Errorf("Find = %v", c)
	}
	if c := Find(conds[:1]); c != nil {
		t.Errorf("Find without ours = %v", c)
	}
}

// FuzzParse: Parse never panics, and what it reads it writes back the same.
func FuzzParse(f *testing.F) {
	f.Add(Message([]Entry{l2, bgp, none, stray, l2Default}))
	f.Add("203.0.113.1: not announced (X): ")
	f.Add("")
	f.Fuzz(func(t *testing.T, msg string) {
		entries, err := Parse(msg)
		if err != nil {
			return
		}
		again, err := Parse(Message(entries))
		if err != nil {
			t.Fatalf("Parse(Message(Parse(%q))): %v", msg, err)
		}
		if Message(again) != Message(entries) {
			t.Fatalf("not stable: %q -> %q", Message(entries), Message(again))
		}
	})
}
