package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config/testdata"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// TestBadCloudConfigStopsTheCCM starts the CCM with broken cloud-configs.
// It must exit non-zero rather than run without pools, and say which key
// and value are wrong, so `kubectl logs` is all a user needs.
func TestBadCloudConfigStopsTheCCM(t *testing.T) {
	requireControlPlane(t)
	tests := []struct {
		name   string
		config string
		args   []string
		want   []string
	}{
		{
			name: "range ends before it starts",
			config: `address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.168.92.210-192.168.92.200
`,
			want: []string{"address-pools[0].addresses[0]", "192.168.92.210-192.168.92.200", "before the start"},
		},
		{
			name: "typo in a key",
			config: `address-pools:
- name: default
  protocol: layer2
  adresses:
  - 192.168.92.200-192.168.92.210
`,
			want: []string{`unknown key "adresses"`, `did you mean "addresses"`},
		},
		{
			name: "unknown protocol",
			config: `address-pools:
- name: default
  protocol: ospf
  addresses:
  - 192.168.92.200-192.168.92.210
`,
			want: []string{"address-pools[0].protocol", `"ospf"`},
		},
		{
			name: "several mistakes are reported at once",
			config: `address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.168.1.5/24
- name: default
  protocol: layer2
  addresses:
  - 10.0.0.0/24
`,
			want: []string{"192.168.1.5/24", "did you mean 192.168.1.0/24", `"default"`},
		},
		{
			name: "no cloud-config at all",
			args: []string{"--cloud-config="},
			want: []string{"needs --cloud-config"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, log := ccm.RunToExit(t, cp, ccm.Options{CloudConfig: tt.config, Args: tt.args}, time.Minute)
			if code == 0 {
				t.Errorf("CCM exited 0 with a bad cloud-config")
			}
			if !containsAll(log, tt.want) {
				t.Errorf("log lacks %q:\n%s", tt.want, tail(log, 3000))
			}
		})
	}
}

// TestBadAnnotationIsReportedOnItsService gives Services broken
// annotations. Each gets a warning event naming the annotation and value,
// and Services around them, created before and after, get addresses as if
// nothing happened.
func TestBadAnnotationIsReportedOnItsService(t *testing.T) {
	e := newEnv(t)
	ccm.Start(t, cp, ccm.Options{CloudConfig: testdata.WalkthroughConfig})

	e.create(e.ns, lbService("good-before"))
	tests := []struct {
		name string
		ann  []string
		want []string
	}{
		{
			name: "bad-ip",
			ann:  []string{"metallb.universe.tf/loadBalancerIPs", "not-an-ip"},
			want: []string{"metallb.universe.tf/loadBalancerIPs", "not-an-ip"},
		},
		{
			name: "two-v4",
			ann:  []string{"metallb.io/loadBalancerIPs", "192.168.92.201,192.168.92.202"},
			want: []string{"metallb.io/loadBalancerIPs", "same family"},
		},
		{
			name: "prefixes-disagree",
			ann:  []string{"metallb.universe.tf/address-pool", "default", "metallb.io/address-pool", "other"},
			want: []string{"metallb.universe.tf/address-pool", "metallb.io/address-pool", "disagree"},
		},
		{
			name: "padded-pool",
			ann:  []string{"metallb.universe.tf/address-pool", " default"},
			want: []string{"metallb.universe.tf/address-pool", "spaces"},
		},
	}
	for _, tt := range tests {
		e.create(e.ns, lbService(tt.name, annotations(tt.ann...)))
	}
	e.create(e.ns, lbService("good-after"))

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.sub(t)
			e.waitEvent(e.ns, tt.name, "Warning", "SyncLoadBalancerFailed", tt.want...)
			if ips := apitest.IngressIPs(e.get(e.ns, tt.name)); len(ips) > 0 {
				t.Errorf("got %v despite the bad annotation", ips)
			}
		})
	}
	for _, name := range []string{"good-before", "good-after"} {
		if ips := apitest.IngressIPs(e.waitIPs(e.ns, name, 1)); !inRange(ips[0], walkthroughRange) {
			t.Errorf("%s got %v, want an address in %s", name, ips, walkthroughRange)
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "…\n" + s
}
