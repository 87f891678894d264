package e2e

import (
	"crypto/tls"
	"net/http"
	"time"

	"k8s.io/client-go/rest"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// MetricsURL is where every lab announcer serves /metrics, /healthz and,
// with --profiling, /debug/pprof/: HTTPS on its namespace's loopback, as
// StartAnnouncerWith sets --metrics-bind-address.
const MetricsURL = "https://127.0.0.1:7472"

// Scrape GETs path (such as "/metrics") from the announcer of h as the
// cluster's admin, a client certificate in system:masters: the announcer
// authenticates it against the client CA it read from the API server and
// lets that group in without a SubjectAccessReview, so scraping works
// while the API server is down too.
func (c *Cluster) Scrape(h *lab.Host, path string, timeout time.Duration) (string, error) {
	return c.ScrapeAs(cp.AdminConfig(), h, path, timeout)
}

// ScrapeAs is Scrape as the identity of cfg (its client certificate or
// bearer token, as a Prometheus with a ServiceAccount token scrapes); nil
// asks anonymously.
func (c *Cluster) ScrapeAs(cfg *rest.Config, h *lab.Host, path string, timeout time.Duration) (string, error) {
	tlsCfg := &tls.Config{}
	if cfg != nil {
		var err error
		if tlsCfg, err = rest.TLSConfigFor(cfg); err != nil {
			return "", err
		}
		if tlsCfg == nil {
			tlsCfg = &tls.Config{}
		}
	}
	var header http.Header
	if cfg != nil && cfg.BearerToken != "" {
		header = http.Header{"Authorization": {"Bearer " + cfg.BearerToken}}
	}
	// The announcer's certificate is self-signed, as the DaemonSet runs
	// it; a scraper skips verification (insecure_skip_verify), as for
	// the cloud-controller-manager.
	tlsCfg.InsecureSkipVerify = true
	return h.HTTPSGet(c.Ctx, MetricsURL+path, timeout, tlsCfg, header)
}
