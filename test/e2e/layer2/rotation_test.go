package layer2

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

// rotationSteps are the three edits of a memberlist key rotation (package
// keyring): accept the new key, make it primary, drop the old one.
var rotationSteps = []map[string][]byte{
	{"secretkey": []byte("old-key"), "accepted-key-next": []byte("new-key")},
	{"secretkey": []byte("new-key"), "accepted-key-old": []byte("old-key")},
	{"secretkey": []byte("new-key")},
}

// rotationPause is how long each node runs with its new edit before the
// next node gets it: several gossip and probe rounds, in which a node
// that could not read another's packets would declare it dead.
const rotationPause = time.Second

// keyFingerprint is what baremetal_announcer_memberlist_keyring_info
// shows for a Secret value: the first 8 hex digits of the SHA-256 of the
// derived key (itself the SHA-256 of the value).
func keyFingerprint(value string) string {
	k := sha256.Sum256([]byte(value))
	f := sha256.Sum256(k[:])
	return hex.EncodeToString(f[:4])
}

// startRotating starts every announcer with a Secret of its own holding
// the old key, so that a test can roll each edit out node by node, as a
// cluster whose nodes see the Secret change at different moments would.
func (tb *testbed) startRotating() {
	tb.T.Helper()
	for _, h := range tb.Lab.Nodes() {
		tb.createSecret("rotate-"+h.Name(), map[string][]byte{"secretkey": []byte("old-key")})
		tb.startWithArgs(h, "--memberlist-secret=rotate-"+h.Name())
	}
	for _, h := range tb.Lab.Nodes() {
		tb.waitMembers(h, 3)
	}
}

// rotate rolls the three steps out, one node at a time, waiting pause
// after each node.
func (tb *testbed) rotate(pause time.Duration) {
	tb.T.Helper()
	for _, step := range rotationSteps {
		for _, h := range tb.Lab.Nodes() {
			tb.updateSecret("rotate-"+h.Name(), step)
			time.Sleep(pause)
		}
	}
}

// TestKeyRotationNodeByNode rotates the memberlist key across three nodes
// while the client keeps asking: no node ever loses another, so no IP
// moves, no request fails, and no IP is ever answered twice. Afterwards
// every node holds the new key only.
func TestKeyRotationNodeByNode(t *testing.T) {
	tb := newTestbed(t)
	tb.startRotating()
	owners := tb.spread(guardIPs...)
	w := tb.watchIPs(guardIPs...)
	tb.rotate(rotationPause)
	w.done()
	for ip, o := range owners {
		if d := w.doubles(ip); len(d) > 0 {
			t.Errorf("%s answered by two nodes in %d probes:%s", ip, len(d), describe(d))
		}
		if bad, total := w.failed(ip, o, 0, w.since()); len(bad) > 0 {
			t.Errorf("%s (owned by %s): %d of %d requests failed or went elsewhere:%s", ip, o, len(bad), total, describeRequests(bad))
		}
	}
	tb.noConflicts(tb.Lab.Nodes()...)
	want := fmt.Sprintf(`baremetal_announcer_memberlist_keyring_info{keys="1",primary="%s"} 1`, keyFingerprint("new-key"))
	for _, h := range tb.Lab.Nodes() {
		m := tb.Metrics(h)
		if !strings.Contains(m, want) {
			t.Errorf("%s does not report %s", h.Name(), want)
		}
		if !strings.Contains(m, "baremetal_announcer_membership_members 3") {
			t.Errorf("%s lost members", h.Name())
		}
	}
	probes, requests := w.counts()
	t.Logf("rotation over %v: %d who-has probes, %d requests", w.since().Round(time.Millisecond), probes, requests)
}
