package app

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/mux"
	apiserveroptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/server/routes"
	"k8s.io/component-base/metrics/legacyregistry"
	controllermanagerapp "k8s.io/controller-manager/app"
	"k8s.io/klog/v2"
)

// DefaultMetricsBindAddress is where /metrics, /healthz and, with
// --profiling, /debug/pprof/ are served: HTTPS on every address, as MetalLB's
// speaker port, but with the cloud-controller-manager's authentication.
const DefaultMetricsBindAddress = ":7472"

// serving is how the announcer serves /metrics, /healthz and /debug/pprof/:
// as the cloud-controller-manager does (k8s.io/cloud-provider's app), over
// HTTPS with a self-signed certificate unless one is given, with
// authentication delegated to the API server (TokenReview for bearer
// tokens, the cluster's client CA for certificates) and authorization
// delegated too (SubjectAccessReview of `get` on the path, a non-resource
// URL). /healthz, /readyz and /livez are always allowed, so a kubelet probe
// needs no credentials and keeps working while the API server is away.
type serving struct {
	// BindAddress is --metrics-bind-address; "" or "0" serves nothing.
	BindAddress    string
	Secure         *apiserveroptions.SecureServingOptions
	Authentication *apiserveroptions.DelegatingAuthenticationOptions
	Authorization  *apiserveroptions.DelegatingAuthorizationOptions
}

func newServing() *serving {
	s := &serving{
		BindAddress:    DefaultMetricsBindAddress,
		Secure:         apiserveroptions.NewSecureServingOptions(),
		Authentication: apiserveroptions.NewDelegatingAuthenticationOptions(),
		Authorization:  apiserveroptions.NewDelegatingAuthorizationOptions(),
	}
	// Certificates are generated in memory unless given: the root file
	// system is read-only.
	s.Secure.ServerCert.CertDirectory = ""
	s.Secure.ServerCert.PairName = Component
	// The request-header settings are read from the API server once at
	// start; an announcer starting while it is away still serves, with
	// bearer tokens and client certificates.
	s.Authentication.TolerateInClusterLookupFailure = true
	return s
}

// AddFlags adds the certificate flags and the cloud-controller-manager's
// authentication and authorization flags.
func (s *serving) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&s.BindAddress, "metrics-bind-address", s.BindAddress, "Address (host:port) for /metrics, /healthz and, with --profiling, /debug/pprof/, over HTTPS with delegated authentication and authorization. \"0\" disables them.")
	fs.StringVar(&s.Secure.ServerCert.CertKey.CertFile, "tls-cert-file", "", "Serving certificate (PEM) for --metrics-bind-address. Empty means a self-signed one generated in memory at start.")
	fs.StringVar(&s.Secure.ServerCert.CertKey.KeyFile, "tls-private-key-file", "", "Private key (PEM) of --tls-cert-file.")
	s.Authentication.AddFlags(fs)
	s.Authorization.AddFlags(fs)
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
	if (s.Secure.ServerCert.CertKey.CertFile == "") != (s.Secure.ServerCert.CertKey.KeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-private-key-file go together"))
	}
	errs = append(errs, s.Authentication.Validate()...)
	errs = append(errs, s.Authorization.Validate()...)
	return errs
}

// start serves until stop is called. /healthz answers 503 until running
// is set: before that the announcer waits for the API, its Node's IP or
// the memberlist Secret, and a failing probe makes that visible in the Pod
// status. kubeconfig is the announcer's own, for the delegated reviews
// when no --authentication-kubeconfig or --authorization-kubeconfig is
// given ("" means in-cluster).
func (s *serving) start(logger klog.Logger, kubeconfig string, profiling bool, running *atomic.Bool) (stop func(), err error) {
	if s.disabled() {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", s.BindAddress)
	if err != nil {
		return nil, fmt.Errorf("--metrics-bind-address: %w", err)
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	s.Secure.Listener = l
	if err := s.Secure.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, fmt.Errorf("generating a self-signed serving certificate: %w", err)
	}
	var info *server.SecureServingInfo
	if err := s.Secure.ApplyTo(&info); err != nil {
		return nil, fmt.Errorf("--metrics-bind-address: %w", err)
	}
	if s.Authentication.RemoteKubeConfigFile == "" {
		s.Authentication.RemoteKubeConfigFile = kubeconfig
	}
	if s.Authorization.RemoteKubeConfigFile == "" {
		s.Authorization.RemoteKubeConfigFile = kubeconfig
	}
	var authn server.AuthenticationInfo
	if err := s.Authentication.ApplyTo(&authn, info, nil); err != nil {
		return nil, fmt.Errorf("delegated authentication: %w", err)
	}
	var authz server.AuthorizationInfo
	if err := s.Authorization.ApplyTo(&authz); err != nil {
		return nil, fmt.Errorf("delegated authorization: %w", err)
	}

	paths := mux.NewPathRecorderMux(Component)
	paths.Handle("/metrics", legacyregistry.Handler())
	paths.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !running.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if profiling {
		routes.Profiling{}.Install(paths)
	}
	handler := controllermanagerapp.BuildHandlerChain(paths, &authz, &authn)

	stopCh := make(chan struct{})
	stopped, _, err := info.Serve(handler, time.Second, stopCh)
	if err != nil {
		close(stopCh)
		return nil, fmt.Errorf("--metrics-bind-address: %w", err)
	}
	logger.Info("Serving metrics and health over HTTPS", "address", l.Addr().String(), "profiling", profiling)
	return func() {
		close(stopCh)
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
		}
	}, nil
}
