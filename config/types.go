package config

import (
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"go4.org/netipx"
)

// Protocol is how an address pool's IPs are made reachable.
type Protocol string

// The protocols of MetalLB's classic configuration.
const (
	Layer2 Protocol = "layer2"
	BGP    Protocol = "bgp"
)

// Config is the whole cloud-config file.
//
// Its keys are those of MetalLB's classic ConfigMap "config" block, so that a
// MetalLB user keeps their file. Keys marked "extension" are ours.
type Config struct {
	// Peers are the BGP routers the announcers talk to.
	Peers []Peer `json:"peers,omitempty"`
	// BGPCommunities names community values, for use in bgp-advertisements.
	BGPCommunities map[string]string `json:"bgp-communities,omitempty"`
	// Pools are the address pools Services get their IPs from.
	Pools []Pool `json:"address-pools,omitempty"`
	// BFDProfiles are BFD settings that peers name in bfd-profile.
	BFDProfiles []BFDProfile `json:"bfd-profiles,omitempty"`

	// ClusterID names this cluster (extension). Default "baremetal".
	ClusterID string `json:"cluster-id,omitempty"`
	// NodeTopology assigns region and zone to nodes (extension).
	NodeTopology []TopologyRule `json:"node-topology,omitempty"`
	// RemovedNodes lists machines that are gone for good (extension). Only
	// these Node objects are deleted by the cloud node lifecycle controller.
	RemovedNodes []string `json:"removed-nodes,omitempty"`

	// Warnings are what Parse found odd but valid, such as a bgp pool
	// with no peers, each written "path: message (line N)" as errors are.
	// Callers log them.
	Warnings []string `json:"-"`
}

// Pool is one address pool.
type Pool struct {
	Name string `json:"name"`
	// Protocol is layer2 or bgp.
	Protocol Protocol `json:"protocol"`
	// Addresses are CIDRs ("203.0.113.0/28") or ranges ("a-b"), v4 or v6.
	Addresses []string `json:"addresses"`
	// AutoAssign lets Services without a pool annotation use this pool.
	// Default true.
	AutoAssign *bool `json:"auto-assign,omitempty"`
	// AvoidBuggyIPs skips IPv4 addresses ending in .0 and .255.
	AvoidBuggyIPs bool `json:"avoid-buggy-ips,omitempty"`
	// BGPAdvertisements says how a bgp pool's IPs are announced.
	BGPAdvertisements []BGPAdvertisement `json:"bgp-advertisements,omitempty"`

	// Priority orders auto-assign pools (extension): lower is tried first.
	// Default 0.
	Priority int `json:"priority,omitempty"`
	// Namespaces restricts the pool to Services in these namespaces
	// (extension). Empty means every namespace.
	Namespaces []string `json:"namespaces,omitempty"`
	// ServiceSelectors restricts the pool to Services whose labels match
	// any of these selectors (extension). Empty means every Service.
	ServiceSelectors []metav1.LabelSelector `json:"service-selectors,omitempty"`
	// NodeSelectors restricts which nodes announce this pool's IPs
	// (extension). Empty means every node.
	NodeSelectors []NodeSelector `json:"node-selectors,omitempty"`
	// Interfaces are the node interfaces a layer2 pool answers on
	// (extension). Empty means the interface holding the node's IP.
	Interfaces []string `json:"interfaces,omitempty"`

	// Ranges is Addresses parsed, sorted and merged. Filled by Parse.
	Ranges []netipx.IPRange `json:"-"`
	// ServiceSelector is ServiceSelectors compiled; nil means every Service.
	ServiceSelector []labels.Selector `json:"-"`
	// NodeSelector is NodeSelectors compiled; nil means every node.
	NodeSelector []labels.Selector `json:"-"`
}

// BGPAdvertisement says how a bgp pool's IPs are announced.
type BGPAdvertisement struct {
	// AggregationLength is the IPv4 prefix length announced. Default 32.
	AggregationLength *int `json:"aggregation-length,omitempty"`
	// AggregationLengthV6 is the IPv6 prefix length announced. Default 128.
	AggregationLengthV6 *int `json:"aggregation-length-v6,omitempty"`
	// LocalPref is the LOCAL_PREF attribute, for iBGP peers.
	LocalPref *uint32 `json:"localpref,omitempty"`
	// Communities are "AA:NN" values or names from bgp-communities.
	Communities []string `json:"communities,omitempty"`
	// LargeCommunities are "A:B:C" values (extension).
	LargeCommunities []string `json:"large-communities,omitempty"`

	// ParsedCommunities is Communities resolved to 32-bit values.
	ParsedCommunities []uint32 `json:"-"`
	// ParsedLargeCommunities is LargeCommunities parsed.
	ParsedLargeCommunities []LargeCommunity `json:"-"`
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct {
	GlobalAdmin, LocalData1, LocalData2 uint32
}

// Peer is one BGP router.
type Peer struct {
	PeerAddress string `json:"peer-address"`
	PeerASN     uint32 `json:"peer-asn"`
	MyASN       uint32 `json:"my-asn"`
	// PeerPort defaults to 179.
	PeerPort uint16 `json:"peer-port,omitempty"`
	// HoldTime defaults to 90s; 0s means no keepalives, so absent (nil)
	// differs from zero. Parse truncates it to whole seconds and sets it.
	HoldTime *Duration `json:"hold-time,omitempty"`
	// KeepaliveTime defaults to a third of HoldTime, in whole seconds.
	// Parse sets it.
	KeepaliveTime *Duration `json:"keepalive-time,omitempty"`
	RouterID      string    `json:"router-id,omitempty"`
	SourceAddress string    `json:"source-address,omitempty"`
	Password      string    `json:"password,omitempty"`
	// PasswordSecret takes the password from a Secret instead (extension).
	PasswordSecret *SecretKeyRef  `json:"password-secret,omitempty"`
	NodeSelectors  []NodeSelector `json:"node-selectors,omitempty"`
	EBGPMultiHop   bool           `json:"ebgp-multihop,omitempty"`
	BFDProfile     string         `json:"bfd-profile,omitempty"`
	// GracefulRestart offers the router BGP graceful restart (RFC 4724,
	// extension): it keeps this node's routes, marked stale, while the
	// announcer restarts, instead of withdrawing them when the session
	// drops.
	GracefulRestart bool `json:"graceful-restart,omitempty"`

	// Address, Source and ID are the parsed addresses (Source and ID may be
	// invalid when unset). Filled by Parse.
	Address netip.Addr `json:"-"`
	Source  netip.Addr `json:"-"`
	ID      netip.Addr `json:"-"`
	// NodeSelector is NodeSelectors compiled; nil means every node.
	NodeSelector []labels.Selector `json:"-"`
	// BFD is the profile BFDProfile names, defaults filled; nil when the
	// peer runs no BFD. Filled by Parse.
	BFD *BFDProfile `json:"-"`
}

// SecretKeyRef points at one key of a Secret.
type SecretKeyRef struct {
	// Namespace empty means the namespace of the component reading it.
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Key defaults to "password" (DefaultPasswordKey).
	Key string `json:"key,omitempty"`
}

// NodeSelector is MetalLB's classic node selector, with kebab-case keys.
type NodeSelector struct {
	MatchLabels      map[string]string     `json:"match-labels,omitempty"`
	MatchExpressions []SelectorRequirement `json:"match-expressions,omitempty"`
}

// SelectorRequirement is one match-expressions entry.
type SelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// BFDProfile is a MetalLB bfd-profile: how a peer's BFD session runs.
// Parse fills the defaults of unset fields (those of MetalLB and FRR).
type BFDProfile struct {
	Name string `json:"name"`
	// ReceiveInterval is the least interval, in milliseconds, between
	// packets we can take. Default 300; 10 to 60000.
	ReceiveInterval *uint32 `json:"receive-interval,omitempty"`
	// TransmitInterval is the least interval, in milliseconds, we would
	// like to send at. Default 300; 10 to 60000.
	TransmitInterval *uint32 `json:"transmit-interval,omitempty"`
	// DetectMultiplier is how many intervals of silence take the session
	// down. Default 3; 2 to 255.
	DetectMultiplier *uint32 `json:"detect-multiplier,omitempty"`
	// EchoInterval is MetalLB's echo interval; accepted (10 to 60000,
	// default 50) but unused, as echo-mode must be false.
	EchoInterval *uint32 `json:"echo-interval,omitempty"`
	// EchoMode must be false: the embedded BFD has no echo function.
	EchoMode bool `json:"echo-mode,omitempty"`
	// PassiveMode: send nothing until the router has sent a packet.
	PassiveMode bool `json:"passive-mode,omitempty"`
	// MinimumTTL is the least TTL of a multihop session's packets (peers
	// with ebgp-multihop). Default 254; 1 to 254. Single-hop packets must
	// arrive with TTL 255 whatever it says (RFC 5881).
	MinimumTTL *uint32 `json:"minimum-ttl,omitempty"`
}

// Defaults and limits of bfd-profiles: MetalLB's, which are FRR's.
const (
	DefaultBFDInterval         = 300
	DefaultBFDDetectMultiplier = 3
	DefaultBFDEchoInterval     = 50
	DefaultBFDMinimumTTL       = 254
	minBFDInterval             = 10
	maxBFDInterval             = 60000
	minBFDDetectMultiplier     = 2
	maxBFDDetectMultiplier     = 255
	maxBFDMinimumTTL           = 254
)

// TopologyRule gives nodes a region and zone (extension). A node takes the
// first rule it matches, by label selector or by an address in Subnets.
type TopologyRule struct {
	Region       string                `json:"region,omitempty"`
	Zone         string                `json:"zone,omitempty"`
	NodeSelector *metav1.LabelSelector `json:"node-selector,omitempty"`
	Subnets      []string              `json:"subnets,omitempty"`

	// Selector and Prefixes are the parsed forms. Filled by Parse.
	Selector labels.Selector `json:"-"`
	Prefixes []netip.Prefix  `json:"-"`
}

// Duration is a time.Duration written as "90s" in YAML (see UnmarshalJSON).
type Duration struct {
	time.Duration
}
