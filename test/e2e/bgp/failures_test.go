package bgp

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// TestSessionFailuresExplained: the router wants a TCP MD5 password. A
// node with the right one (from a Secret) peers and announces; the others
// fail, and their log and metrics say why: a wrong password, a missing
// one, an AS number the router rejects, a router whose AS is not
// peer-asn, and a refused connection are each told apart.
func TestSessionFailuresExplained(t *testing.T) {
	const password = "lab-md5-right"
	tb := newTestbed(t, options{bgpd: lab.DefaultBGPDConf(password)})
	secretName := "bgp-password-" + tb.NS
	_, err := tb.CS.CoreV1().Secrets(e2e.SystemNamespace).Create(tb.Ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secretName},
		Data:       map[string][]byte{"password": []byte(password)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tb.CS.CoreV1().Secrets(e2e.SystemNamespace).Delete(context.Background(), secretName, metav1.DeleteOptions{})
	})

	peer := func(addr string, port, peerASN, myASN int, auth string) string {
		return fmt.Sprintf("- peer-address: %s\n  peer-port: %d\n  peer-asn: %d\n  my-asn: %d\n  hold-time: 3s\n  keepalive-time: 1s\n%s", addr, port, peerASN, myASN, auth)
	}
	fromSecret := "  password-secret:\n    name: " + secretName + "\n"
	configs := map[string]string{
		// The right password from the Secret over IPv4; over IPv6 a
		// peer-asn that is not the router's.
		"node1": "peers:\n" + peer("203.0.113.1", 179, 64512, 64513, fromSecret) + peer("2001:db8:1::1", 179, 65000, 64513, fromSecret),
		// A wrong password over IPv4, none over IPv6.
		"node2": "peers:\n" + peer("203.0.113.1", 179, 64512, 64513, "  password: lab-md5-wrong\n") + peer("2001:db8:1::1", 179, 64512, 64513, ""),
		// An AS the router does not expect over IPv4; a port where
		// nothing listens over IPv6.
		"node3": "peers:\n" + peer("203.0.113.1", 179, 64512, 64999, fromSecret) + peer("2001:db8:1::1", 1179, 64512, 64513, ""),
	}
	for _, h := range tb.Lab.Nodes() {
		tb.StartAnnouncerWith(h, tb.WriteConfig(h.Name()+".yaml", configs[h.Name()]+poolConfig))
	}
	tb.waitSession(tb.Lab.Host("node1").IPv4(), true)
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10")
	tb.waitRoute("198.51.100.10", "node1")

	want := []struct {
		node, peer, reason string
	}{
		{"node1", "2001:db8:1::1", "peer_asn_mismatch"},
		{"node2", "203.0.113.1", "password_mismatch"},
		{"node2", "2001:db8:1::1", "no_answer"},
		{"node3", "203.0.113.1", "my_asn_rejected"},
		{"node3", "2001:db8:1::1", "connection_refused"},
	}
	for _, w := range want {
		h := tb.Lab.Host(w.node)
		sample := fmt.Sprintf(`baremetal_announcer_bgp_session_failures_total{peer=%q,reason=%q}`, w.peer, w.reason)
		tb.Eventuallyf(func() string {
			return fmt.Sprintf("%s: %s; metrics:\n%s", w.node, sample, grepLines(tb.Metrics(h), "baremetal_announcer_bgp"))
		}, func() bool { return tb.hasMetric(h, sample) })
		logLine := ""
		for _, l := range strings.Split(tb.Announcers[w.node].Log(), "\n") {
			if strings.Contains(l, "BGP session cannot be established") && strings.Contains(l, `peer="`+w.peer+`"`) && strings.Contains(l, `reason="`+w.reason+`"`) {
				logLine = l
				break
			}
		}
		if logLine == "" {
			t.Errorf("%s: no log line for %s with reason %s", w.node, w.peer, w.reason)
		} else {
			t.Logf("%s: %s", w.node, logLine)
		}
	}

	// The one good session shows up, the failed ones down.
	n1 := tb.Metrics(tb.Lab.Host("node1"))
	if !strings.Contains(n1, `baremetal_announcer_bgp_session_up{peer="203.0.113.1"} 1`) ||
		!strings.Contains(n1, `baremetal_announcer_bgp_announced_prefixes{peer="203.0.113.1"} 1`) {
		t.Errorf("node1 metrics:\n%s", grepLines(n1, "baremetal_announcer_bgp"))
	}
	if n2 := tb.Metrics(tb.Lab.Host("node2")); !strings.Contains(n2, `baremetal_announcer_bgp_session_up{peer="203.0.113.1"} 0`) {
		t.Errorf("node2 metrics:\n%s", grepLines(n2, "baremetal_announcer_bgp"))
	}
	// The router saw the wrong signatures, silently.
	if out, err := tb.Lab.Router().Exec(tb.Ctx, "nstat", "-az", "TcpExtTCPMD5Failure", "TcpExtTCPMD5NotFound"); err == nil {
		t.Logf("router's TCP MD5 counters:\n%s", out)
	}
}
