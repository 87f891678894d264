package config

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"go4.org/netipx"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validator checks a decoded Config and fills its defaults and parsed
// fields. It knows nothing of the file: Parse gives its problems their
// lines.
type validator struct {
	c *Config
	// skip says whether the path with this text is, or is inside, a value
	// the decoder dropped: that value's problem is reported already, and
	// one mistake gives one error.
	skip func(path string) bool
	// errs are the problems found, the first room of them; dropped counts
	// the rest.
	errs          field.ErrorList
	room, dropped int
	// communities are the valid bgp-communities; badCommunities the names
	// whose value was already reported as invalid.
	communities    map[string]uint32
	badCommunities map[string]bool
	// entries are the valid addresses entries of every pool, sorted by
	// their first address once pools has run.
	entries []poolEntry
	// warnings become Config.Warnings if the file is valid.
	warnings field.ErrorList
	// bfd are the valid bfd-profiles by name; bfdIndex every named one,
	// valid or not, by name.
	bfd      map[string]*BFDProfile
	bfdIndex map[string]int
}

// full says whether room problems are listed already; callers check it
// before doing work only to describe a problem.
func (v *validator) full() bool {
	return len(v.errs) >= v.room
}

// report adds a problem of type t at path.
func (v *validator) report(t field.ErrorType, path *field.Path, format string, args ...any) {
	if v.skip(pathText(path)) {
		return
	}
	if v.full() {
		v.dropped++
		return
	}
	v.errs = append(v.errs, newError(t, path, format, args...))
}

// errorf reports a value that is not valid.
func (v *validator) errorf(path *field.Path, format string, args ...any) {
	v.report(field.ErrorTypeInvalid, path, format, args...)
}

// required reports a value that must be there and is not.
func (v *validator) required(path *field.Path, format string, args ...any) {
	v.report(field.ErrorTypeRequired, path, format, args...)
}

// duplicate reports a value that is already elsewhere.
func (v *validator) duplicate(path *field.Path, format string, args ...any) {
	v.report(field.ErrorTypeDuplicate, path, format, args...)
}

// forbidden reports a value that is valid, but not here.
func (v *validator) forbidden(path *field.Path, format string, args ...any) {
	v.report(field.ErrorTypeForbidden, path, format, args...)
}

// warnf records something valid but probably not what the user meant.
func (v *validator) warnf(path *field.Path, format string, args ...any) {
	v.warnings = append(v.warnings, &field.Error{Type: field.ErrorTypeInvalid, Field: pathText(path), Detail: fmt.Sprintf(format, args...)})
}

// checkName reports the problems a k8s name validator found, if any. The
// value is not quoted where it may be a secret (secretPath).
func (v *validator) checkName(path *field.Path, value, what string, check nameCheck) bool {
	if check.valid(value) {
		return true
	}
	if v.full() {
		v.errorf(path, "not listed") // only counted: not worth Kubernetes' words
		return false
	}
	if msgs := check.problems(value); len(msgs) > 0 {
		shown := strconv.Quote(value)
		if secretPath(pathText(path)) {
			shown = "a value " + hidden(value)
		}
		v.errorf(path, "%s is not a valid %s: %s", shown, what, strings.Join(msgs, "; "))
		return false
	}
	return true
}

func (v *validator) validate() {
	c := v.c
	if c.ClusterID == "" {
		c.ClusterID = DefaultClusterID
	} else {
		// It ends up in object names and label values: a DNS label is safe
		// in both.
		v.checkName(field.NewPath("cluster-id"), c.ClusterID, "cluster-id (a DNS-1123 label)", dns1123Label)
	}
	v.bgpCommunities()
	v.bfdProfiles()
	v.peers()
	v.pools()
	v.peersInPools()
	v.topology()
	for i, n := range c.RemovedNodes {
		v.checkName(field.NewPath("removed-nodes").Index(i), n, "node name", dns1123Subdomain)
	}
}

func (v *validator) bgpCommunities() {
	v.communities = map[string]uint32{}
	v.badCommunities = map[string]bool{}
	names := make([]string, 0, len(v.c.BGPCommunities))
	for name := range v.c.BGPCommunities {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		value := v.c.BGPCommunities[name]
		c, err := parseCommunity(value)
		if err != nil {
			v.badCommunities[name] = true
			v.errorf(child(field.NewPath("bgp-communities"), name), "%q %v", value, err)
			continue
		}
		v.communities[name] = c
	}
}

// parseCommunity parses an RFC 1997 community written "AA:NN".
func parseCommunity(s string) (uint32, error) {
	parts := strings.Split(s, ":")
	if len(parts) == 2 {
		hi, err1 := strconv.ParseUint(parts[0], 10, 16)
		lo, err2 := strconv.ParseUint(parts[1], 10, 16)
		if err1 == nil && err2 == nil {
			return uint32(hi)<<16 | uint32(lo), nil
		}
	}
	return 0, fmt.Errorf("is not a community: want AA:NN, two numbers from 0 to 65535")
}

// parseLargeCommunity parses an RFC 8092 large community written "A:B:C",
// optionally prefixed "large:" as in MetalLB's later CRDs.
func parseLargeCommunity(s string) (LargeCommunity, error) {
	parts := strings.Split(strings.TrimPrefix(s, "large:"), ":")
	if len(parts) == 3 {
		var n [3]uint32
		ok := true
		for i, p := range parts {
			u, err := strconv.ParseUint(p, 10, 32)
			ok = ok && err == nil
			n[i] = uint32(u)
		}
		if ok {
			return LargeCommunity{GlobalAdmin: n[0], LocalData1: n[1], LocalData2: n[2]}, nil
		}
	}
	return LargeCommunity{}, fmt.Errorf("is not a large community: want A:B:C, three numbers from 0 to 4294967295")
}

func (v *validator) bfdProfiles() {
	v.bfd, v.bfdIndex = map[string]*BFDProfile{}, map[string]int{}
	for i := range v.c.BFDProfiles {
		p := &v.c.BFDProfiles[i]
		path := field.NewPath("bfd-profiles").Index(i)
		at := path.Child
		valid := true
		ranged := func(key string, f **uint32, def, lo, hi uint32, unit string) {
			if *f == nil {
				d := def
				*f = &d
				return
			}
			if n := **f; n < lo || n > hi {
				valid = false
				v.errorf(at(key), "%d is out of range: want %d to %d%s", n, lo, hi, unit)
			}
		}
		ranged("receive-interval", &p.ReceiveInterval, DefaultBFDInterval, minBFDInterval, maxBFDInterval, " milliseconds")
		ranged("transmit-interval", &p.TransmitInterval, DefaultBFDInterval, minBFDInterval, maxBFDInterval, " milliseconds")
		ranged("detect-multiplier", &p.DetectMultiplier, DefaultBFDDetectMultiplier, minBFDDetectMultiplier, maxBFDDetectMultiplier, "")
		ranged("echo-interval", &p.EchoInterval, DefaultBFDEchoInterval, minBFDInterval, maxBFDInterval, " milliseconds")
		ranged("minimum-ttl", &p.MinimumTTL, DefaultBFDMinimumTTL, 1, maxBFDMinimumTTL, "")
		if p.EchoMode {
			valid = false
			v.errorf(at("echo-mode"), "true is not supported: the embedded BFD has no echo function (RFC 5880 6.4); set it false, detection then runs on control packets at receive-interval")
		}
		switch j, dup := v.bfdIndex[p.Name]; {
		case p.Name == "":
			v.required(at("name"), "must not be empty")
		case dup:
			v.duplicate(at("name"), "%q is also the name of bfd-profiles[%d]", p.Name, j)
		default:
			v.bfdIndex[p.Name] = i
			if valid {
				v.bfd[p.Name] = p
			}
		}
	}
}

// Limits of the BGP protocol (RFC 4271) and of TCP MD5 (RFC 2385, Linux's
// TCP_MD5SIG_MAXKEYLEN).
const (
	defaultHoldTime = 90 * time.Second
	minHoldTime     = 3 * time.Second
	maxHoldTime     = 65535 * time.Second
	maxPasswordLen  = 80
	defaultBGPPort  = 179
)

func (v *validator) peers() {
	type peerKey struct {
		addr netip.Addr
		port uint16
	}
	type selectedKey struct {
		peerKey
		selectors string
	}
	// The same router on every rack (a shared gateway address) is a real
	// pattern; two peers are only duplicates when they apply to the same
	// nodes: one of them has no node-selectors, or both the same ones.
	// Each map holds the first peer of its kind, so that the check is
	// linear in the number of peers; selectors are only compared, and
	// rendered as a key, once a second peer shares an address and port.
	first := map[peerKey]int{}             // any peer
	firstBare := map[peerKey]int{}         // a peer with no node-selectors
	firstSelected := map[selectedKey]int{} // a peer with these node-selectors
	compared := map[peerKey]bool{}         // first's peer is in firstSelected
	for i := range v.c.Peers {
		p := &v.c.Peers[i]
		path := field.NewPath("peers").Index(i)
		v.peer(p, path)
		if !p.Address.IsValid() {
			continue
		}
		k := peerKey{p.Address, p.PeerPort}
		j, dup := first[k]
		if !dup {
			first[k] = i
			if len(p.NodeSelectors) == 0 {
				firstBare[k] = i
			}
			continue
		}
		if !compared[k] {
			compared[k] = true
			if q := &v.c.Peers[j]; len(q.NodeSelectors) > 0 {
				firstSelected[selectedKey{k, selectorsKey(q.NodeSelectors)}] = j
			}
		}
		if len(p.NodeSelectors) > 0 {
			sk := selectedKey{k, selectorsKey(p.NodeSelectors)}
			j, dup = firstBare[k]
			if s, ok := firstSelected[sk]; ok && (!dup || s < j) {
				j, dup = s, true
			}
			if _, ok := firstSelected[sk]; !ok {
				firstSelected[sk] = i
			}
		} else if _, ok := firstBare[k]; !ok {
			firstBare[k] = i
		}
		if dup {
			v.duplicate(path, "peer %s port %d is already peers[%d]; give the two different node-selectors if each serves different nodes", p.Address, p.PeerPort, j)
		}
	}
}

// selectorsKey is a text that two lists of node selectors share exactly
// when they select the same way.
func selectorsKey(sels []NodeSelector) string {
	js, _ := json.Marshal(sels) // cannot fail: strings and maps of strings
	return string(js)
}

func (v *validator) peer(p *Peer, path *field.Path) {
	at := path.Child
	if p.PeerAddress == "" {
		v.required(at("peer-address"), "must be set")
	} else if ip, err := parseIP(strings.TrimSpace(p.PeerAddress)); err != nil {
		v.errorf(at("peer-address"), "%q is not an IP address: %v", p.PeerAddress, err)
	} else {
		p.Address = ip
	}
	if p.PeerASN == 0 {
		v.errorf(at("peer-asn"), "must be a non-zero AS number, got 0")
	}
	if p.MyASN == 0 {
		v.errorf(at("my-asn"), "must be a non-zero AS number, got 0")
	}
	if p.PeerPort == 0 {
		p.PeerPort = defaultBGPPort
	}

	// Like MetalLB, times are whole seconds, as on the wire.
	hold := defaultHoldTime
	if given := p.HoldTime; given != nil {
		hold = given.Truncate(time.Second)
		switch {
		case given.Duration < 0:
			v.errorf(at("hold-time"), "%q must not be negative", *given)
		case given.Duration > 0 && hold < minHoldTime:
			v.errorf(at("hold-time"), "%q must be 0 (no keepalives) or at least 3s", *given)
		case hold > maxHoldTime:
			v.errorf(at("hold-time"), "%q must be at most %s", *given, maxHoldTime)
		}
	}
	p.HoldTime = &Duration{hold}
	keepalive := hold / 3 / time.Second * time.Second
	if given := p.KeepaliveTime; given != nil {
		keepalive = given.Truncate(time.Second)
		switch {
		case given.Duration < 0:
			v.errorf(at("keepalive-time"), "%q must not be negative", *given)
		case hold == 0 && keepalive != 0:
			v.errorf(at("keepalive-time"), "%q needs a non-zero hold-time", *given)
		case hold != 0 && keepalive == 0:
			v.errorf(at("keepalive-time"), "%q must be at least 1s when hold-time is not 0", *given)
		case hold != 0 && keepalive >= hold:
			v.errorf(at("keepalive-time"), "%q must be less than hold-time (%s)", *given, hold)
		}
	}
	p.KeepaliveTime = &Duration{keepalive}

	if p.RouterID != "" {
		if ip, err := parseIP(strings.TrimSpace(p.RouterID)); err != nil {
			v.errorf(at("router-id"), "%q is not an IPv4 address: %v", p.RouterID, err)
		} else if !ip.Is4() {
			v.errorf(at("router-id"), "%q is not an IPv4 address: a BGP router ID is 32 bits", p.RouterID)
		} else {
			p.ID = ip
		}
	}
	if p.SourceAddress != "" {
		if ip, err := parseIP(strings.TrimSpace(p.SourceAddress)); err != nil {
			v.errorf(at("source-address"), "%q is not an IP address: %v", p.SourceAddress, err)
		} else if p.Address.IsValid() && ip.Is4() != p.Address.Is4() {
			v.errorf(at("source-address"), "%q is not in the IP family of peer-address %s", p.SourceAddress, p.Address)
		} else {
			p.Source = ip
		}
	}
	// The password itself is never echoed into logs.
	if len(p.Password) > maxPasswordLen {
		v.errorf(at("password"), "is %d bytes long (value not shown): TCP MD5 keys are at most %d bytes", len(p.Password), maxPasswordLen)
	}
	if s := p.PasswordSecret; s != nil {
		if p.Password != "" {
			v.forbidden(at("password-secret"), "password and password-secret are mutually exclusive: keep one")
		}
		sp := at("password-secret")
		if s.Name == "" {
			v.required(sp.Child("name"), "must be set")
		} else {
			v.checkName(sp.Child("name"), s.Name, "Secret name", dns1123Subdomain)
		}
		if s.Namespace != "" {
			v.checkName(sp.Child("namespace"), s.Namespace, "namespace name", dns1123Label)
		}
		if s.Key == "" {
			s.Key = DefaultPasswordKey
		} else {
			v.checkName(sp.Child("key"), s.Key, "Secret key", configMapKey)
		}
	}
	p.NodeSelector = v.nodeSelectors(at("node-selectors"), p.NodeSelectors)
	if p.BFDProfile != "" {
		if prof := v.bfd[p.BFDProfile]; prof != nil {
			p.BFD = prof
		} else if _, named := v.bfdIndex[p.BFDProfile]; !named {
			// A profile that is there but invalid was reported already.
			msg := fmt.Sprintf("%q is not the name of any bfd-profiles entry", p.BFDProfile)
			names := make([]string, 0, len(v.bfdIndex))
			for n := range v.bfdIndex {
				names = append(names, n)
			}
			if s := suggest(p.BFDProfile, names); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
			} else if len(names) > 0 {
				sort.Strings(names)
				msg += "; profiles: " + strings.Join(names, ", ")
			} else {
				msg += "; add it under bfd-profiles"
			}
			v.errorf(at("bfd-profile"), "%s", msg)
		}
	}
}

// DefaultPasswordKey is the key of password-secret used when none is set:
// that of a kubernetes.io/basic-auth Secret, as MetalLB's later CRDs use.
const DefaultPasswordKey = "password"

// poolEntry is one valid addresses entry, for the overlap check.
type poolEntry struct {
	pool, index int
	r           netipx.IPRange
	text        string
}

// path is where the entry is in the file.
func (e *poolEntry) path() *field.Path {
	return field.NewPath("address-pools").Index(e.pool).Child("addresses").Index(e.index)
}

func (v *validator) pools() {
	names := map[string]int{}
	var entries []poolEntry
	for i := range v.c.Pools {
		p := &v.c.Pools[i]
		path := field.NewPath("address-pools").Index(i)
		at := path.Child

		switch j, dup := names[p.Name]; {
		case p.Name == "":
			v.required(at("name"), "must not be empty")
		case dup:
			v.duplicate(at("name"), "%q is also the name of address-pools[%d]", p.Name, j)
		default:
			names[p.Name] = i
		}
		switch p.Protocol {
		case Layer2, BGP:
		case "":
			v.required(at("protocol"), "must be set: layer2 or bgp")
		default:
			v.errorf(at("protocol"), "%q is not a protocol: want layer2 or bgp", p.Protocol)
		}

		if len(p.Addresses) == 0 {
			v.required(at("addresses"), "the pool has no addresses")
		}
		if p.Protocol == BGP && len(v.c.Peers) == 0 {
			v.warnf(at("protocol"), "bgp, but no peers are configured: Services get this pool's addresses, and no router learns of them until peers are added")
		}
		var b netipx.IPSetBuilder
		var widths [2]prefixWidths // IPv4, IPv6
		valid := true
		for j, a := range p.Addresses {
			ap := at("addresses").Index(j)
			r, err := parseAddressEntry(a)
			if err != nil {
				valid = false
				v.errorf(ap, "%q %v", a, err)
				continue
			}
			if msg := checkSpecial(r); msg != "" {
				valid = false
				v.errorf(ap, "%q %s", a, msg)
				continue
			}
			b.AddRange(r)
			entries = append(entries, poolEntry{pool: i, index: j, r: r, text: a})
			if r.From().Is4() {
				widths[0].add(r, a)
			} else {
				widths[1].add(r, a)
			}
		}
		set, _ := b.IPSet() // cannot fail: every range added is valid
		p.Ranges = set.Ranges()
		if valid && len(p.Ranges) > 0 && p.Size().Sign() == 0 {
			v.errorf(at("avoid-buggy-ips"), "true leaves the pool no address to assign: every address ends in .0 or .255")
		}

		v.advertisements(p, path, &widths)
		if p.Protocol == BGP && len(p.Interfaces) > 0 {
			v.forbidden(at("interfaces"), "only layer2 pools answer on interfaces, this pool is bgp")
		}
		for j, name := range p.Interfaces {
			if msg := checkInterfaceName(name); msg != "" {
				v.errorf(at("interfaces").Index(j), "%q is not an interface name: %s", name, msg)
			}
		}
		for j, ns := range p.Namespaces {
			v.checkName(at("namespaces").Index(j), ns, "namespace name", dns1123Label)
		}
		p.ServiceSelector = v.labelSelectors(at("service-selectors"), p.ServiceSelectors)
		p.NodeSelector = v.nodeSelectors(at("node-selectors"), p.NodeSelectors)
	}
	v.overlaps(entries)
	v.entries = entries
}

// peersInPools refuses a pool that holds a peer's address or the address
// it is reached from: a Service given that address would take the
// router's address, or a node's, and cut the BGP session it relies on.
func (v *validator) peersInPools() {
	// entries are sorted by first address; reach[i] is the entry among
	// entries[:i+1] that ends last. The entry holding ip, if any, is
	// reach[i] for the last i that starts at or before ip.
	reach := make([]int, len(v.entries))
	for i := range v.entries {
		reach[i] = i
		if i > 0 && v.entries[i].r.To().Less(v.entries[reach[i-1]].r.To()) {
			reach[i] = reach[i-1]
		}
	}
	holder := func(ip netip.Addr) *poolEntry {
		i := sort.Search(len(v.entries), func(i int) bool { return ip.Less(v.entries[i].r.From()) }) - 1
		if i < 0 || !v.entries[reach[i]].r.Contains(ip) {
			return nil
		}
		return &v.entries[reach[i]]
	}
	for i := range v.c.Peers {
		p := &v.c.Peers[i]
		for _, f := range []struct {
			key, whose string
			ip         netip.Addr
		}{{"peer-address", "the router's", p.Address}, {"source-address", "a node's", p.Source}} {
			if !f.ip.IsValid() {
				continue
			}
			if e := holder(f.ip); e != nil {
				v.errorf(e.path(), "%q holds %s, the %s of peers[%d]: a Service given it would take %s address", e.text, f.ip, f.key, i, f.whose)
			}
		}
	}
}

// prefixWidths lists, for one IP family of one pool, the widest prefix of
// each valid addresses entry in file order, so that checking an
// aggregation length costs a binary search rather than a pass over every
// entry.
type prefixWidths struct {
	text []string
	// widest[i] is the widest prefix length of entry i; upTo[i] is the
	// largest of widest[:i+1], so it never decreases.
	widest, upTo []int
}

func (w *prefixWidths) add(r netipx.IPRange, text string) {
	widest := 128
	for _, pfx := range r.Prefixes() {
		widest = min(widest, pfx.Bits())
	}
	upTo := widest
	if n := len(w.upTo); n > 0 {
		upTo = max(upTo, w.upTo[n-1])
	}
	w.text = append(w.text, text)
	w.widest = append(w.widest, widest)
	w.upTo = append(w.upTo, upTo)
}

// firstWider returns the first entry whose widest prefix is longer than
// length, or -1.
func (w *prefixWidths) firstWider(length int) int {
	i := sort.Search(len(w.upTo), func(i int) bool { return w.upTo[i] > length })
	if i == len(w.upTo) {
		return -1
	}
	return i
}

// overlaps reports addresses that belong to two entries, of one pool or of
// two: an address must have one pool, or allocation would be ambiguous.
func (v *validator) overlaps(entries []poolEntry) {
	sort.SliceStable(entries, func(i, j int) bool {
		return entries[i].r.From().Less(entries[j].r.From())
	})
	// A sweep in address order: an entry overlaps an earlier one exactly
	// when it starts before the furthest end seen so far. IPv4 sorts before
	// IPv6, so families never meet.
	var reach *poolEntry
	for i := range entries {
		e := &entries[i]
		if reach != nil && !reach.r.To().Less(e.r.From()) {
			a, b := reach, e // report on the later of the two in the file
			if a.pool > b.pool || (a.pool == b.pool && a.index > b.index) {
				a, b = b, a
			}
			path, other := b.path(), a.path()
			if a.pool == b.pool {
				v.duplicate(path, "%q overlaps %q (%s) of the same pool", b.text, a.text, other)
			} else {
				v.duplicate(path, "%q of pool %q overlaps %q of pool %q (%s)", b.text, v.c.Pools[b.pool].Name, a.text, v.c.Pools[a.pool].Name, other)
			}
		}
		if reach == nil || reach.r.To().Less(e.r.To()) {
			reach = e
		}
	}
}

// checkInterfaceName applies Linux's rules for interface names.
func checkInterfaceName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 15:
		return "longer than 15 bytes"
	case s == "." || s == "..":
		return "reserved"
	case strings.ContainsAny(s, "/: \t\n\r\v\f"):
		return "must not contain '/', ':' or spaces"
	}
	return ""
}

// aggregationCovers refuses an aggregation length shorter than every
// prefix of one of the pool's address entries, as MetalLB does: the
// aggregate would then be wider than anything the user wrote, and announce
// addresses that may be another network's. Like MetalLB, an entry passes
// when its widest prefix fits, so configs that MetalLB accepts still load.
// A bad entry is already reported, and w holds only the valid ones.
func (v *validator) aggregationCovers(at *field.Path, length int, w *prefixWidths) {
	if i := w.firstWider(length); i >= 0 {
		v.errorf(at, "%d is shorter than /%d, the widest prefix of addresses entry %q: the aggregate would announce addresses outside the pool", length, w.widest[i], w.text[i])
	}
}

func (v *validator) advertisements(p *Pool, path *field.Path, widths *[2]prefixWidths) {
	at := path.Child("bgp-advertisements")
	if p.Protocol != BGP {
		if len(p.BGPAdvertisements) > 0 && p.Protocol == Layer2 {
			v.forbidden(at, "only bgp pools have bgp-advertisements, this pool is layer2")
		}
		return
	}
	if len(p.BGPAdvertisements) == 0 {
		// As in MetalLB: one route per Service IP, no communities.
		p.BGPAdvertisements = []BGPAdvertisement{{}}
	}
	for i := range p.BGPAdvertisements {
		a := &p.BGPAdvertisements[i]
		ap := at.Index(i)
		if l := a.AggregationLength; l != nil && (*l < 0 || *l > 32) {
			v.errorf(ap.Child("aggregation-length"), "%d is out of range: want 0 to 32", *l)
		} else if l != nil {
			v.aggregationCovers(ap.Child("aggregation-length"), *l, &widths[0])
		}
		if l := a.AggregationLengthV6; l != nil && (*l < 0 || *l > 128) {
			v.errorf(ap.Child("aggregation-length-v6"), "%d is out of range: want 0 to 128", *l)
		} else if l != nil {
			v.aggregationCovers(ap.Child("aggregation-length-v6"), *l, &widths[1])
		}
		a.ParsedCommunities = nil
		for j, s := range a.Communities {
			cp := ap.Child("communities").Index(j)
			// Names first, as MetalLB resolves them.
			if c, ok := v.communities[s]; ok {
				a.ParsedCommunities = append(a.ParsedCommunities, c)
				continue
			}
			if v.badCommunities[s] {
				continue // its definition is already reported
			}
			c, err := parseCommunity(s)
			if err != nil {
				if !strings.Contains(s, ":") {
					v.errorf(cp, "%q is not defined in bgp-communities, and is not an AA:NN community", s)
				} else {
					v.errorf(cp, "%q %v", s, err)
				}
				continue
			}
			a.ParsedCommunities = append(a.ParsedCommunities, c)
		}
		a.ParsedLargeCommunities = nil
		for j, s := range a.LargeCommunities {
			c, err := parseLargeCommunity(s)
			if err != nil {
				v.errorf(ap.Child("large-communities").Index(j), "%q %v", s, err)
				continue
			}
			a.ParsedLargeCommunities = append(a.ParsedLargeCommunities, c)
		}
	}
}

func (v *validator) topology() {
	for i := range v.c.NodeTopology {
		r := &v.c.NodeTopology[i]
		path := field.NewPath("node-topology").Index(i)
		if r.Region == "" && r.Zone == "" {
			v.required(path, "needs a region or a zone")
		}
		// They become the values of the topology.kubernetes.io labels.
		if r.Region != "" {
			v.checkName(path.Child("region"), r.Region, "region (a label value)", labelValue)
		}
		if r.Zone != "" {
			v.checkName(path.Child("zone"), r.Zone, "zone (a label value)", labelValue)
		}
		if r.NodeSelector == nil && len(r.Subnets) == 0 {
			v.required(path, "needs a node-selector or subnets to say which nodes it is for")
		}
		r.Selector = nil
		if r.NodeSelector != nil {
			r.Selector = v.selector(path.Child("node-selector"), camelNames, r.NodeSelector.MatchLabels, fromLabelSelector(r.NodeSelector.MatchExpressions))
		}
		r.Prefixes = nil
		for j, s := range r.Subnets {
			p, err := parsePrefix(strings.TrimSpace(s))
			if err != nil {
				v.errorf(path.Child("subnets").Index(j), "%q %v", s, err)
				continue
			}
			r.Prefixes = append(r.Prefixes, p)
		}
	}
}
