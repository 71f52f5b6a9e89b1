package probe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
)

// testCA is a certificate authority made for one test, and a server
// certificate for 127.0.0.1 it signed.
type testCA struct {
	pool *x509.CertPool
	cert tls.Certificate
}

// newCert makes a CA and a server certificate for 127.0.0.1 valid from
// notBefore to notAfter. With selfSigned, the server certificate signs
// itself and the pool holds only the unrelated CA.
func newCert(t *testing.T, notBefore, notAfter time.Time, selfSigned bool) testCA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syncd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour * 365),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: notBefore, NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	parent, signer := ca, any(caKey)
	if selfSigned {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testCA{pool: pool, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

func tlsServer(t *testing.T, c testCA, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{c.cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes the probes refuse
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func okHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("all good here")) })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusInternalServerError) })
	return mux
}

func httpProbe(url string, mod ...func(*desired.HTTPProbe)) desired.Probe {
	h := &desired.HTTPProbe{URL: url}
	for _, m := range mod {
		m(h)
	}
	return desired.Probe{Name: "p", Timeout: 2 * time.Second, HTTP: h}
}

func TestCheckHTTP(t *testing.T) {
	srv := httptest.NewServer(okHandler())
	t.Cleanup(srv.Close)
	c := &Checker{}
	cases := []struct {
		name  string
		probe desired.Probe
		want  string // "" passes; else a substring of the error
	}{
		{"2xx by default", httpProbe(srv.URL + "/"), ""},
		{"status and body", httpProbe(srv.URL+"/", func(h *desired.HTTPProbe) { h.Status, h.Body = 200, "good" }), ""},
		{"wrong status", httpProbe(srv.URL+"/broken", func(h *desired.HTTPProbe) { h.Status = 200 }), "status 500, want 200"},
		{"not 2xx", httpProbe(srv.URL + "/broken"), "status 500, want 2xx"},
		{"body missing", httpProbe(srv.URL+"/", func(h *desired.HTTPProbe) { h.Body = "installed" }), `does not contain "installed"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Check(context.Background(), "app", tc.probe, nil)
			if tc.want == "" && (!r.OK || r.Error != "") || tc.want != "" && (r.OK || !strings.Contains(r.Error, tc.want)) {
				t.Errorf("ok %v, error %q; want %q", r.OK, r.Error, tc.want)
			}
		})
	}
}

func TestCheckHTTPS(t *testing.T) {
	now := time.Now()
	good := newCert(t, now.Add(-time.Hour), now.Add(90*24*time.Hour), false)
	soon := newCert(t, now.Add(-time.Hour), now.Add(5*24*time.Hour+time.Hour), false)
	expired := newCert(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour), false)
	self := newCert(t, now.Add(-time.Hour), now.Add(90*24*time.Hour), true)

	t.Run("trusted", func(t *testing.T) {
		srv := tlsServer(t, good, okHandler())
		r := (&Checker{RootCAs: good.pool}).Check(context.Background(), "app", httpProbe(srv.URL+"/", func(h *desired.HTTPProbe) { h.CertDays = 14 }), nil)
		if !r.OK || r.CertDays == nil || *r.CertDays != 89 {
			t.Errorf("ok %v %q, days %v", r.OK, r.Error, r.CertDays)
		}
	})
	t.Run("expiring in 5 days passes and says so", func(t *testing.T) {
		srv := tlsServer(t, soon, okHandler())
		var s State
		pol := Policy{Failures: 3, Successes: 2, CertDays: 14}
		r := (&Checker{RootCAs: soon.pool}).Check(context.Background(), "app", httpProbe(srv.URL+"/", func(h *desired.HTTPProbe) { h.CertDays = 14 }), nil)
		if !r.OK || r.CertDays == nil || *r.CertDays != 5 {
			t.Fatalf("ok %v %q, days %v", r.OK, r.Error, r.CertDays)
		}
		if ev := s.Observe(pol, r, false); len(ev) != 1 || ev[0] != CertExpiring {
			t.Errorf("events %v", ev)
		}
	})
	t.Run("expired fails and says why", func(t *testing.T) {
		srv := tlsServer(t, expired, okHandler())
		r := (&Checker{RootCAs: expired.pool}).Check(context.Background(), "app", httpProbe(srv.URL+"/"), nil)
		if r.OK || !strings.Contains(r.Error, "the certificate has expired") {
			t.Errorf("ok %v, error %q", r.OK, r.Error)
		}
	})
	t.Run("self-signed fails unless tls_skip_verify", func(t *testing.T) {
		srv := tlsServer(t, self, okHandler())
		c := &Checker{RootCAs: self.pool}
		r := c.Check(context.Background(), "app", httpProbe(srv.URL+"/"), nil)
		if r.OK || !strings.Contains(r.Error, "not signed by an authority the host trusts (self-signed?)") {
			t.Errorf("ok %v, error %q", r.OK, r.Error)
		}
		r = c.Check(context.Background(), "app", httpProbe(srv.URL+"/", func(h *desired.HTTPProbe) { h.TLSSkipVerify = true }), nil)
		if !r.OK {
			t.Errorf("tls_skip_verify: %q", r.Error)
		}
	})
}

// A target that accepts and never answers fails at the probe's timeout,
// and says so; so does one that answers the TCP handshake but nothing
// else.
func TestCheckTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	p := httpProbe(srv.URL + "/")
	p.Timeout = 300 * time.Millisecond
	start := time.Now()
	r := (&Checker{}).Check(context.Background(), "app", p, nil)
	if r.OK || !strings.Contains(r.Error, "no answer within 300ms (timeout)") {
		t.Errorf("ok %v, error %q", r.OK, r.Error)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the check took %s", d)
	}
}

func TestCheckTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	open := ln.Addr().String()
	c := &Checker{}
	if r := c.Check(context.Background(), "app", desired.Probe{Name: "db", TCP: &desired.TCPProbe{Address: open}}, nil); !r.OK {
		t.Errorf("open port: %q", r.Error)
	}
	ln.Close()
	r := c.Check(context.Background(), "app", desired.Probe{Name: "db", TCP: &desired.TCPProbe{Address: open}}, nil)
	if r.OK || !strings.Contains(r.Error, "connect "+open+": ") || !strings.Contains(r.Error, "refused") {
		t.Errorf("closed port: ok %v, %q", r.OK, r.Error)
	}
}

// fakeContainers is the engine as container probes see it.
type fakeContainers struct {
	mu      sync.Mutex        // checks run in parallel
	health  map[string]string // project/service -> state
	down    error
	pings   int
	queries int
}

func (f *fakeContainers) ServiceHealth(_ context.Context, project, service string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.down != nil {
		return "", f.down
	}
	if s, ok := f.health[project+"/"+service]; ok {
		return s, nil
	}
	return "missing", nil
}

func (f *fakeContainers) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pings++
	return f.down
}

func TestCheckContainer(t *testing.T) {
	f := &fakeContainers{health: map[string]string{"app/web": "healthy", "app/worker": "running", "app/db": "unhealthy", "app/job": "exited (1)"}}
	c := &Checker{Containers: f}
	for svc, want := range map[string]string{"web": "", "worker": "", "db": "service db is unhealthy", "job": "service job is exited (1)", "gone": "service gone has no container"} {
		r := c.Check(context.Background(), "app", desired.Probe{Name: svc, Container: &desired.ContainerProbe{Service: svc}}, nil)
		if want == "" && !r.OK || want != "" && r.Error != want {
			t.Errorf("%s: ok %v, %q; want %q", svc, r.OK, r.Error, want)
		}
	}
	f.down = errors.New("dial unix /var/run/docker.sock: connect: no such file or directory")
	r := c.Check(context.Background(), "app", desired.Probe{Name: "web", Container: &desired.ContainerProbe{Service: "web"}}, nil)
	if r.OK || !r.EngineDown || !strings.Contains(r.Error, "engine unreachable") {
		t.Errorf("engine down: %+v", r)
	}
}

// A secret in a URL never shows in what a check says.
func TestCheckRedacts(t *testing.T) {
	secrets := desired.Secrets{"token": "s3cr3t-T0ken-Value"}
	srv := httptest.NewServer(okHandler())
	t.Cleanup(srv.Close)
	for _, url := range []string{srv.URL + "/broken?token=s3cr3t-T0ken-Value", "http://127.0.0.1:1/?token=s3cr3t-T0ken-Value", "http://s3cr3t-T0ken-Value.invalid/"} {
		r := (&Checker{}).Check(context.Background(), "app", httpProbe(url), secrets.RedactFragments)
		if r.OK || r.Error == "" || strings.Contains(r.Error, "s3cr3t") {
			t.Errorf("%s: %q", url, r.Error)
		}
	}
}

// TestCheckEscapesTheTargetsText: what a probe says can quote the target's
// own text (here its certificate's names); a control character of it is
// escaped, so a hostile target cannot act on the terminal or the sink that
// shows the probe's error.
func TestCheckEscapesTheTargetsText(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "evil"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"evil\x1b]0;pwned\x07.example"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv := tlsServer(t, testCA{pool: pool, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: caKey}}, okHandler())
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/"
	r := (&Checker{RootCAs: pool}).Check(context.Background(), "app", httpProbe(url), nil)
	if r.OK || !strings.Contains(r.Error, "another name") {
		t.Fatalf("ok %v, error %q", r.OK, r.Error)
	}
	if strings.ContainsAny(r.Error, "\x1b\x07") || !strings.Contains(r.Error, `evil\x1b]0;pwned\x07.example`) {
		t.Errorf("the target's text is not escaped: %q", r.Error)
	}
}
