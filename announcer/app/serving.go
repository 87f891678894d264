package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/wait"
	apiserverconfig "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/authorization/path"
	"k8s.io/apiserver/pkg/authorization/union"
	"k8s.io/apiserver/pkg/endpoints/filters"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"
)

// DefaultMetricsBindAddress is where /metrics, /healthz and, with
// --profiling, /debug/pprof/ are served, on every address (MetalLB's
// speaker port).
const DefaultMetricsBindAddress = ":7472"

// What the delegated reviews are, as the Kubernetes controller managers
// have them (k8s.io/apiserver's Delegating*Options defaults).
const (
	// reviewCacheTTL is how long a TokenReview or SubjectAccessReview
	// answer is reused.
	reviewCacheTTL = 10 * time.Second
	reviewTimeout  = 10 * time.Second
	// authConfigMap holds the cluster's client CA, which the API server
	// publishes for delegated authentication.
	authConfigMapNamespace = "kube-system"
	authConfigMap          = "extension-apiserver-authentication"
	clientCAKey            = "client-ca-file"
	// mastersGroup is let in without a SubjectAccessReview, as the API
	// server would allow it anyway: its scrapes work during an outage.
	mastersGroup = "system:masters"
)

// alwaysAllowed are the paths anyone may get, without credentials and
// without the API server: the kubelet's probes.
var alwaysAllowed = []string{"/healthz", "/readyz", "/livez"}

// reviewBackoff paces retries of a failed review, as k8s.io/apiserver's
// DefaultAuthWebhookRetryBackoff.
var reviewBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// serving is how the announcer serves /metrics, /healthz and
// /debug/pprof/: as the cloud-controller-manager serves its secure port,
// over HTTPS with authentication and authorization delegated to the API
// server. A bearer token is checked by TokenReview and a client
// certificate against the cluster's client CA (the
// extension-apiserver-authentication ConfigMap); the user then needs `get`
// on the path, a non-resource URL, by SubjectAccessReview. system:masters
// and the probe paths are let in without asking.
//
// It is built from k8s.io/apiserver's authenticator, authorizer, filter
// and certificate packages rather than from its server options
// (SecureServingOptions, Delegating*Options), which bring etcd clients,
// admission and tracing along: an idle announcer measured 59 MB resident
// with these against 74 MB with the options (47 MB with plain HTTP).
// Front-proxy (request-header) authentication, which no scraper uses, is
// left out.
type serving struct {
	// BindAddress is --metrics-bind-address; "" or "0" serves nothing.
	BindAddress       string
	CertFile, KeyFile string

	// addr is where start listens, once it does.
	addr net.Addr
}

func newServing() *serving { return &serving{BindAddress: DefaultMetricsBindAddress} }

// AddFlags adds --metrics-bind-address and the certificate flags.
func (s *serving) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&s.BindAddress, "metrics-bind-address", s.BindAddress, "Address (host:port) for /metrics, /healthz and, with --profiling, /debug/pprof/, served over HTTPS with authentication and authorization delegated to the API server; /healthz needs neither. \"0\" disables them.")
	fs.StringVar(&s.CertFile, "tls-cert-file", "", "Serving certificate (PEM) for --metrics-bind-address, reloaded when it changes. Empty means a self-signed one made in memory at start.")
	fs.StringVar(&s.KeyFile, "tls-private-key-file", "", "Private key (PEM) of --tls-cert-file.")
}

// disabled says whether nothing is served.
func (s *serving) disabled() bool { return s.BindAddress == "" || s.BindAddress == "0" }

// Validate checks the flags.
func (s *serving) Validate() []error {
	if s.disabled() {
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(s.BindAddress); err != nil {
		errs = append(errs, fmt.Errorf("--metrics-bind-address %q: %w", s.BindAddress, err))
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-private-key-file go together"))
	}
	return errs
}

// start serves until stop is called. /healthz answers 503 until running
// is set: before that the announcer waits for the API, its Node's IP or
// the memberlist Secret, and a failing probe makes that visible in the Pod
// status. client makes the reviews and reads the client CA.
func (s *serving) start(logger klog.Logger, client kubernetes.Interface, profiling bool, running *atomic.Bool) (stop func(), err error) {
	if s.disabled() {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			cancel()
		}
	}()

	clientCA, err := dynamiccertificates.NewDynamicCAFromConfigMapController("client-ca", authConfigMapNamespace, authConfigMap, clientCAKey, client)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                          &apiserverconfig.AnonymousAuthConfig{Enabled: true},
		TokenAccessReviewClient:            client.AuthenticationV1(),
		TokenAccessReviewTimeout:           reviewTimeout,
		WebhookRetryBackoff:                &reviewBackoff,
		CacheTTL:                           reviewCacheTTL,
		ClientCertificateCAContentProvider: clientCA,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("delegated authentication: %w", err)
	}
	authz, err := authorizerFor(client)
	if err != nil {
		return nil, err
	}
	cert, err := s.servingCert()
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", legacyregistry.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !running.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	// The controller managers' chain (k8s.io/controller-manager's
	// BuildHandlerChain): who asks, then may they.
	var handler http.Handler = filters.WithAuthorization(mux, authz, scheme.Codecs)
	handler = filters.WithAuthentication(handler, authn, filters.Unauthorized(scheme.Codecs), nil, nil)
	handler = filters.WithRequestInfo(handler, &request.RequestInfoFactory{})

	// Certificates are asked for but checked by the authenticator, so a
	// scraper with only a token still gets through the handshake.
	base := &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert, NextProtos: []string{"http/1.1"}}
	certs := dynamiccertificates.NewDynamicServingCertificateController(base, clientCA, cert, nil, nil)
	clientCA.AddListener(certs)
	cert.AddListener(certs)
	// The client CA comes from the API server, which may be away now:
	// until it is read, certificates authenticate no one (tokens still
	// do), and the controller keeps trying.
	if err := clientCA.RunOnce(ctx); err != nil {
		logger.Info("Client CA not read yet; client certificates are refused until it is", "configMap", authConfigMapNamespace+"/"+authConfigMap, "err", err)
	}
	go clientCA.Run(ctx, 1)
	if r, ok := cert.(dynamiccertificates.ControllerRunner); ok {
		if err := r.RunOnce(ctx); err != nil {
			return nil, fmt.Errorf("--tls-cert-file: %w", err)
		}
		go r.Run(ctx, 1)
	}
	if err := certs.RunOnce(); err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	go certs.Run(1, ctx.Done())

	l, err := net.Listen("tcp", s.BindAddress)
	if err != nil {
		return nil, fmt.Errorf("--metrics-bind-address: %w", err)
	}
	s.addr = l.Addr()
	srv := &http.Server{
		Handler:           handler,
		TLSConfig:         &tls.Config{GetConfigForClient: certs.GetConfigForClient},
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
	go func() {
		if err := srv.Serve(tls.NewListener(l, srv.TLSConfig)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Metrics server stopped")
		}
	}()
	logger.Info("Serving metrics and health over HTTPS", "address", l.Addr().String(), "profiling", profiling)
	return func() {
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
	}, nil
}

// authorizerFor lets system:masters and the probe paths in, and asks the
// API server about everyone else.
func authorizerFor(client kubernetes.Interface) (authorizer.Authorizer, error) {
	delegated, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: client.AuthorizationV1(),
		AllowCacheTTL:             reviewCacheTTL,
		DenyCacheTTL:              reviewCacheTTL,
		WebhookRetryBackoff:       &reviewBackoff,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("delegated authorization: %w", err)
	}
	paths, err := path.NewAuthorizer(alwaysAllowed)
	if err != nil {
		return nil, err
	}
	return union.New(
		union.NamedAuthorizer{AuthorizerName: "privileged-groups", Authorizer: authorizerfactory.NewPrivilegedGroups(mastersGroup)},
		union.NamedAuthorizer{AuthorizerName: "always-allowed-paths", Authorizer: paths},
		union.NamedAuthorizer{AuthorizerName: "subject-access-review", Authorizer: delegated},
	)
}

// servingCert is --tls-cert-file, reloaded when it changes, or a
// self-signed certificate made now: the root file system is read-only,
// and a scraper skips verification of it (insecure_skip_verify), as for
// the cloud-controller-manager's.
func (s *serving) servingCert() (dynamiccertificates.CertKeyContentProvider, error) {
	if s.CertFile != "" {
		c, err := dynamiccertificates.NewDynamicServingContentFromFiles("serving-cert", s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-file: %w", err)
		}
		return c, nil
	}
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("localhost", []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, nil)
	if err != nil {
		return nil, fmt.Errorf("generating a self-signed serving certificate: %w", err)
	}
	return dynamiccertificates.NewStaticCertKeyContent("self-signed", certPEM, keyPEM)
}
