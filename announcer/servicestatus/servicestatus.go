package servicestatus

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionType is the type of the announcers' condition on a Service. It
// is a qualified name with the project's prefix, as metav1.Condition
// requires of types that are not Kubernetes' own.
const ConditionType = "cloud-provider-baremetal.io/Announced"

// FieldManager is the server-side apply field manager all announcers
// write the condition under.
const FieldManager = "baremetal-announcer"

// Protocols of an entry, as in the cloud-config.
const (
	Layer2 = "layer2"
	BGP    = "bgp"
)

// Reasons. ReasonAnnounced is the condition's reason when every IP is
// announced; the others say why an IP is not, and the first IP that is not
// gives the condition's reason. All match metav1.Condition's reason format.
const (
	ReasonAnnounced = "Announced"
	// ReasonNoEligibleNode: no live node is Ready, not excluded, matches
	// the pool and, for externalTrafficPolicy: Local, has an endpoint.
	ReasonNoEligibleNode = "NoEligibleNode"
	// ReasonNoPeers: nodes may advertise the IP, but none of them has a
	// BGP peer.
	ReasonNoPeers = "NoPeers"
	// ReasonNotInPool: the IP lies in no pool the announcers know.
	ReasonNotInPool = "NotInPool"
	// ReasonNoInterface: the owner does not know which interface to
	// answer on.
	ReasonNoInterface = "NoInterface"
)

// Entry is what the condition says of one IP.
type Entry struct {
	IP netip.Addr
	// Pool is empty when the IP lies in no pool; Protocol is then empty
	// too.
	Pool     string
	Protocol string
	// Nodes announce the IP: the one layer2 owner, or the nodes that
	// advertise it by BGP, sorted.
	Nodes []string
	// Interfaces the layer2 owner answers on; empty when it uses its
	// default interface and the writer does not know its name.
	Interfaces []string
	// Peers are the BGP peers the Nodes advertise it to, sorted.
	Peers []string
	// Reason is empty when the IP is announced; else one of the reasons,
	// and Detail says more.
	Reason string
	Detail string
}

// Announced says whether the IP is announced.
func (e Entry) Announced() bool { return e.Reason == "" }

const (
	entrySep     = "; "
	listSep      = ", "
	defaultIface = "its default interface"
)

// Format writes e in the message grammar.
func (e Entry) Format() string {
	var b strings.Builder
	b.WriteString(e.IP.String())
	if e.Pool != "" {
		fmt.Fprintf(&b, " from pool %s via %s", e.Pool, e.Protocol)
	}
	b.WriteString(": ")
	switch {
	case e.Reason != "":
		// The entry separator may not occur inside an entry.
		fmt.Fprintf(&b, "not announced (%s): %s", e.Reason, strings.ReplaceAll(e.Detail, entrySep, ", "))
	case e.Protocol == BGP:
		fmt.Fprintf(&b, "advertised by %s to %s", strings.Join(e.Nodes, listSep), strings.Join(e.Peers, listSep))
	default:
		ifaces := defaultIface
		if len(e.Interfaces) > 0 {
			ifaces = strings.Join(e.Interfaces, listSep)
		}
		fmt.Fprintf(&b, "announced by %s on %s", strings.Join(e.Nodes, listSep), ifaces)
	}
	return b.String()
}

// Message joins the entries, sorted by IP.
func Message(entries []Entry) string {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b Entry) int { return a.IP.Compare(b.IP) })
	parts := make([]string, len(sorted))
	for i, e := range sorted {
		parts[i] = e.Format()
	}
	return strings.Join(parts, entrySep)
}

// Condition builds the condition for entries: True with ReasonAnnounced
// when every IP is announced, else False with the first missing IP's
// reason. LastTransitionTime is left to the writer, which keeps the old
// one while the status does not change.
func Condition(entries []Entry) metav1.Condition {
	c := metav1.Condition{
		Type:    ConditionType,
		Status:  metav1.ConditionTrue,
		Reason:  ReasonAnnounced,
		Message: Message(entries),
	}
	for _, e := range sortedByIP(entries) {
		if !e.Announced() {
			c.Status = metav1.ConditionFalse
			c.Reason = e.Reason
			break
		}
	}
	return c
}

func sortedByIP(entries []Entry) []Entry {
	s := slices.Clone(entries)
	slices.SortFunc(s, func(a, b Entry) int { return a.IP.Compare(b.IP) })
	return s
}

var (
	headRE   = regexp.MustCompile(`^from pool (\S+) via (layer2|bgp)$`)
	reasonRE = regexp.MustCompile(`^not announced \(([A-Za-z][A-Za-z0-9]*)\): (.*)$`)
	l2RE     = regexp.MustCompile(`^announced by (\S+) on (.+)$`)
	bgpRE    = regexp.MustCompile(`^advertised by (.+) to (.*)$`)
)

// Parse reads a message written by Message back into its entries. An
// error names the entry it could not read.
func Parse(msg string) ([]Entry, error) {
	if msg == "" {
		return nil, nil
	}
	var out []Entry
	for i, part := range strings.Split(msg, entrySep) {
		e, err := parseEntry(part)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: %w", i, part, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func parseEntry(s string) (Entry, error) {
	var e Entry
	// The address is the first word: an IPv6 address may end in ":", so
	// the ": " after it cannot be searched for.
	ipText, rest, ok := strings.Cut(s, " ")
	if !ok {
		return e, fmt.Errorf(`no ": " after the address`)
	}
	var state string
	if !strings.HasPrefix(rest, "from pool ") {
		ipText, _ = strings.CutSuffix(ipText, ":")
		state = rest
	} else {
		head, st, ok := strings.Cut(rest, ": ")
		if !ok {
			return e, fmt.Errorf(`no ": " after the address`)
		}
		m := headRE.FindStringSubmatch(head)
		if m == nil {
			return e, fmt.Errorf(`want "ADDRESS from pool POOL via layer2|bgp", got %q`, ipText+" "+head)
		}
		e.Pool, e.Protocol, state = m[1], m[2], st
	}
	ip, err := netip.ParseAddr(ipText)
	if err != nil {
		return e, fmt.Errorf("address %q: %w", ipText, err)
	}
	e.IP = ip
	if m := reasonRE.FindStringSubmatch(state); m != nil {
		e.Reason, e.Detail = m[1], m[2]
		return e, nil
	}
	if e.Pool == "" {
		return e, fmt.Errorf("an address in no pool must say why it is not announced, not %q", state)
	}
	switch e.Protocol {
	case BGP:
		m := bgpRE.FindStringSubmatch(state)
		if m == nil {
			return e, fmt.Errorf(`want "advertised by NODES to PEERS", got %q`, state)
		}
		e.Nodes = splitList(m[1])
		e.Peers = splitList(m[2])
	default:
		m := l2RE.FindStringSubmatch(state)
		if m == nil {
			return e, fmt.Errorf(`want "announced by NODE on INTERFACES", got %q`, state)
		}
		e.Nodes = splitList(m[1])
		if m[2] != defaultIface {
			e.Interfaces = splitList(m[2])
		}
	}
	return e, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, listSep)
}

// Find returns the announcers' condition among conds, or nil.
func Find(conds []metav1.Condition) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == ConditionType {
			return &conds[i]
		}
	}
	return nil
}
