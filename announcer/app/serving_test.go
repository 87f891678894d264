package app

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
)

// fakeAPIServer answers the reviews as an API server would that knows one
// token, of user "prometheus", who may get /metrics and nothing else.
// Anything else (the client CA's ConfigMap) is not found.
func fakeAPIServer(t *testing.T) kubernetes.Interface {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apis/authentication.k8s.io/v1/tokenreviews", func(w http.ResponseWriter, r *http.Request) {
		var tr authenticationv1.TokenReview
		if err := json.NewDecoder(r.Body).Decode(&tr); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if tr.Spec.Token == "good-token" {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "prometheus"}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&tr)
	})
	mux.HandleFunc("POST /apis/authorization.k8s.io/v1/subjectaccessreviews", func(w http.ResponseWriter, r *http.Request) {
		var sar authorizationv1.SubjectAccessReview
		if err := json.NewDecoder(r.Body).Decode(&sar); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		na := sar.Spec.NonResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "prometheus" && na != nil && na.Path == "/metrics" && na.Verb == "get"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&sar)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// TestServing: /healthz is open (and says when the announcer is not
// running yet); everything else needs an identity the API server vouches
// for (TokenReview) and allows the path (SubjectAccessReview); profiles
// exist only with --profiling.
func TestServing(t *testing.T) {
	client := fakeAPIServer(t)
	for _, profiling := range []bool{false, true} {
		s := newServing()
		s.BindAddress = "127.0.0.1:0"
		var running atomic.Bool
		logger, _ := ktesting.NewTestContext(t)
		stop, err := s.start(logger, client, profiling, &running)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		get := func(path, token string) (int, string) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, "https://"+s.addr.String()+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			defer hc.CloseIdleConnections()
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}

		if code, body := get("/healthz", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
			t.Errorf("profiling=%v: /healthz before running: %d %q, want 503 starting", profiling, code, body)
		}
		running.Store(true)
		pprofWant := http.StatusForbidden
		tests := []struct {
			name, path, token string
			want              int
		}{
			{"probe without credentials", "/healthz", "", http.StatusOK},
			{"probe with a bad token", "/healthz", "bad-token", http.StatusUnauthorized},
			{"anonymous scrape", "/metrics", "", http.StatusForbidden},
			{"unknown token", "/metrics", "bad-token", http.StatusUnauthorized},
			{"allowed scraper", "/metrics", "good-token", http.StatusOK},
			{"scraper asks for profiles", "/debug/pprof/", "good-token", pprofWant},
			{"anonymous asks for profiles", "/debug/pprof/", "", http.StatusForbidden},
		}
		for _, tt := range tests {
			if code, body := get(tt.path, tt.token); code != tt.want {
				t.Errorf("profiling=%v, %s: GET %s: %d, want %d (%.200s)", profiling, tt.name, tt.path, code, tt.want, body)
			}
		}
		if code, body := get("/metrics", "good-token"); code != http.StatusOK || !strings.Contains(body, "# TYPE") {
			t.Errorf("profiling=%v: /metrics: %d, body %.200q", profiling, code, body)
		}
	}
}

func TestServingValidate(t *testing.T) {
	tests := []struct {
		name string
		s    serving
		want string
	}{
		{name: "default", s: *newServing()},
		{name: "disabled", s: serving{BindAddress: "0"}},
		{name: "no port", s: serving{BindAddress: "127.0.0.1"}, want: `--metrics-bind-address "127.0.0.1"`},
		{name: "certificate without key", s: serving{BindAddress: ":7472", CertFile: "tls.crt"}, want: "--tls-cert-file and --tls-private-key-file go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.s.Validate()
			switch {
			case tt.want == "" && len(errs) > 0:
				t.Errorf("Validate = %v, want none", errs)
			case tt.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want)):
				t.Errorf("Validate = %v, want one containing %q", errs, tt.want)
			}
		})
	}
}
