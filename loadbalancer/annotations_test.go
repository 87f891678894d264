package loadbalancer

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseAnnotations(t *testing.T) {
	tests := []struct {
		name    string
		ann     map[string]string
		want    string // fmt of the result
		wantErr string
	}{
		{name: "none", ann: nil, want: "pool= ips=[] share="},
		{name: "metallb pool", ann: map[string]string{"metallb.universe.tf/address-pool": "p"}, want: "pool=p ips=[] share="},
		{name: "our pool", ann: map[string]string{"cloud-provider-baremetal.io/address-pool": "p"}, want: "pool=p ips=[] share="},
		{
			name:    "disagreeing prefixes",
			ann:     map[string]string{"metallb.universe.tf/address-pool": "a", "metallb.io/address-pool": "b"},
			wantErr: `metallb.universe.tf/address-pool="a" and metallb.io/address-pool="b" disagree`,
		},
		{
			name: "agreeing prefixes",
			ann:  map[string]string{"metallb.universe.tf/address-pool": "a", "metallb.io/address-pool": "a"},
			want: "pool=a ips=[] share=",
		},
		{
			name: "dual-stack IPs",
			ann:  map[string]string{"metallb.universe.tf/loadBalancerIPs": "203.0.113.1, 2001:db8::1"},
			want: "pool= ips=[203.0.113.1 2001:db8::1] share=",
		},
		{
			name: "our IPs",
			ann:  map[string]string{"cloud-provider-baremetal.io/load-balancer-ips": "203.0.113.1"},
			want: "pool= ips=[203.0.113.1] share=",
		},
		{
			name:    "two IPv4",
			ann:     map[string]string{"metallb.universe.tf/loadBalancerIPs": "203.0.113.1,203.0.113.2"},
			wantErr: "same family",
		},
		{
			name:    "not an IP",
			ann:     map[string]string{"metallb.universe.tf/loadBalancerIPs": "203.0.113.300"},
			wantErr: `annotation metallb.universe.tf/loadBalancerIPs: "203.0.113.300": "203.0.113.300" is not an IP address`,
		},
		{
			name:    "empty entry",
			ann:     map[string]string{"metallb.universe.tf/loadBalancerIPs": "203.0.113.1,"},
			wantErr: "empty entry",
		},
		{
			name:    "pool with spaces",
			ann:     map[string]string{"metallb.universe.tf/address-pool": " p"},
			wantErr: "leading or trailing spaces",
		},
		{name: "sharing", ann: map[string]string{"metallb.universe.tf/allow-shared-ip": "k"}, want: "pool= ips=[] share=k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAnnotations(tt.ann)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprintf("pool=%s ips=%v share=%s", got.Pool, got.IPs, got.SharingKey); s != tt.want {
				t.Fatalf("got %s, want %s", s, tt.want)
			}
		})
	}
}

// FuzzParseAnnotations checks the annotation parser never panics and that
// what it accepts is well formed.
func FuzzParseAnnotations(f *testing.F) {
	f.Add("default", "203.0.113.1,2001:db8::1", "key")
	f.Add("", "", "")
	f.Add("p", "::ffff:203.0.113.1", "")
	f.Add("p", "fe80::1%eth0", "")
	f.Fuzz(func(t *testing.T, pool, ips, share string) {
		got, err := ParseAnnotations(map[string]string{
			"metallb.universe.tf/address-pool":    pool,
			"metallb.universe.tf/loadBalancerIPs": ips,
			"metallb.universe.tf/allow-shared-ip": share,
		})
		if err != nil {
			return
		}
		if len(got.IPs) > 2 {
			t.Fatalf("accepted %d addresses", len(got.IPs))
		}
		for _, ip := range got.IPs {
			if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() {
				t.Fatalf("accepted a malformed address %v", ip)
			}
		}
	})
}
