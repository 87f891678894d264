package e2e

import (
	"fmt"
	"os"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// CheckPrivileges fails the test unless the kernel reports that the
// announcer of h runs with exactly the uid, gid and capabilities of
// deploy/base/announcer-daemonset.yaml. ip netns exec and setpriv exec in
// place, so the started PID is the announcer's own.
func (c *Cluster) CheckPrivileges(h *lab.Host) {
	c.T.Helper()
	p := c.Announcers[h.Name()]
	if p == nil {
		c.T.Fatalf("no announcer started on %s", h.Name())
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		c.T.Fatalf("announcer of %s: %v", h.Name(), err)
	}
	if err := announcerPrivileges.CheckStatus(string(status)); err != nil {
		c.T.Errorf("announcer of %s does not run with the DaemonSet's privileges %+v: %v", h.Name(), announcerPrivileges, err)
	}
}
