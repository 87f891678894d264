package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// httpServer is a node's tiny web server; Close stops it.
type httpServer struct {
	srv *http.Server
	l   net.Listener
}

func (s *httpServer) Close() error {
	err := s.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ServeHTTP runs a small HTTP server inside the host's namespace on every
// address (IPv4 and IPv6, VIPs on lo included) at port. It answers every
// request with the host's name and a newline ("node2\n"), which is what the
// service's endpoints do in the lab: a client can tell which node a VIP led
// it to. The listener is a socket of the namespace; the serving goroutines
// run anywhere. The returned Closer stops it early; Close of the lab stops
// it anyway.
func (h *Host) ServeHTTP(port int) (io.Closer, error) {
	l, err := listenIn(h.ns, "tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("%s: listen on port %d: %w", h.name, port, err)
	}
	body := []byte(h.name + "\n")
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	s := &httpServer{srv: srv, l: l}
	if err := h.lab.track(s); err != nil {
		l.Close()
		return nil, err
	}
	go func() { _ = srv.Serve(l) }()
	return s, nil
}

// HTTPGet fetches url from inside the host's namespace and returns the body
// of a 200 response. Every call opens a new connection (no keep-alive), so
// each request shows where the VIP leads now and goes through ARP/NDP and
// routing afresh. timeout bounds the whole request.
func (h *Host) HTTPGet(ctx context.Context, url string, timeout time.Duration) (string, error) {
	return h.HTTPSGet(ctx, url, timeout, nil, nil)
}

// HTTPSGet is HTTPGet with the TLS configuration cfg for https URLs (its
// client certificate and the server names or roots it trusts) and extra
// request headers, such as Authorization.
func (h *Host) HTTPSGet(ctx context.Context, url string, timeout time.Duration, cfg *tls.Config, header http.Header) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{
		Proxy: nil, // the test's environment may name a proxy; the lab has none
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, h.ns, network, addr)
		},
		TLSClientConfig:   cfg,
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: GET %s: %w", h.name, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("%s: GET %s: reading body: %w", h.name, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: GET %s: %s", h.name, url, resp.Status)
	}
	return string(b), nil
}
