package bgp

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"k8s.io/klog/v2/ktesting"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// peersTestConfig has a peer for every node, one with a password-secret
// for rack a, and one with a literal password for rack b.
const peersTestConfig = `
peers:
- {peer-address: 203.0.113.1, peer-asn: 64512, my-asn: 64513}
- {peer-address: 203.0.113.2, peer-asn: 64512, my-asn: 64513, password-secret: {name: bgp-password}, node-selectors: [{match-labels: {rack: a}}]}
- {peer-address: "2001:db8:1::1", peer-asn: 64512, my-asn: 64513, password: literal,
   node-selectors: [{match-expressions: [{key: rack, operator: In, values: [b]}]}]}
address-pools:
- {name: routed, protocol: bgp, addresses: [198.51.100.0/24]}
`

// TestPeersFor checks peer selection by node-selectors and passwords from
// Secrets.
func TestPeersFor(t *testing.T) {
	cloud, err := config.Parse([]byte(peersTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	secret := func(pw string, err error) func(config.SecretKeyRef) (string, error) {
		return func(ref config.SecretKeyRef) (string, error) {
			if ref.Name != "bgp-password" || ref.Key != config.DefaultPasswordKey {
				return "", fmt.Errorf("unexpected ref %+v", ref)
			}
			return pw, err
		}
	}
	tests := []struct {
		name      string
		labels    map[string]string
		passwords func(config.SecretKeyRef) (string, error)
		want      []string // address=password
	}{
		{"no labels: only the peer without selectors", nil, nil, []string{"203.0.113.1="}},
		{"rack a: password from the Secret", map[string]string{"rack": "a"}, secret("s3cret", nil), []string{"203.0.113.1=", "203.0.113.2=s3cret"}},
		{"rack a, Secret unreadable: that peer is left out", map[string]string{"rack": "a"}, secret("", errors.New("Secret baremetal-system/bgp-password does not exist")), []string{"203.0.113.1="}},
		{"rack a, no Secret source: that peer is left out", map[string]string{"rack": "a"}, nil, []string{"203.0.113.1="}},
		{"rack b: match-expressions, literal password", map[string]string{"rack": "b"}, nil, []string{"203.0.113.1=", "2001:db8:1::1=literal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			s := New(Config{Logger: logger, Passwords: tt.passwords})
			defer s.Close()
			var got []string
			for _, p := range s.peersFor(cloud.Peers, tt.labels) {
				got = append(got, p.Address.String()+"="+p.Password)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("peers %v, want %v", got, tt.want)
			}
			// The configuration itself is not changed.
			for _, p := range cloud.Peers {
				if p.PasswordSecret != nil && p.Password != "" {
					t.Errorf("peersFor wrote the password into the config")
				}
			}
		})
	}
}
