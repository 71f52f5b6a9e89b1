package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// probeImage is the demo image this file's tests run: a tag of their own,
// so building it from this tree's sources never moves the tag other tests
// share.
const probeImage = "syncdtest-demoweb:probe"

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// A release whose container is healthy but whose HTTP probe fails is
// rolled back, on the real engine, and the previous release keeps serving.
func TestSyncE2EProbeFailingReleaseRollsBack(t *testing.T) {
	t.Parallel()
	testenv.DemoImage(t, probeImage, false)
	f := newFleetOf(t)
	app := testenv.ProjectName(t)
	port := strconv.Itoa(freePort(t))
	f.vars["WEB_PORT"] = port
	f.vars["FAIL_PATH"] = "/nothing"
	f.write("apps/"+app+"/compose.yaml", `services:
  web:
    image: `+probeImage+`
    environment:
      DEMO_MESSAGE: ${MSG}
      DEMO_FAIL_PATH: ${FAIL_PATH}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
`+healthy)
	// The token in the URL is a secret: it must show nowhere.
	f.write("apps/"+app+"/app.yaml", `health_timeout: 15s
probes:
  - name: home
    http:
      url: http://127.0.0.1:${WEB_PORT}/?token=${api_token}
      status: 200
  - name: port
    tcp: {address: "127.0.0.1:${WEB_PORT}"}
  - name: web
    container: {service: web}
`)
	f.apps = append(f.apps, app)
	f.commit()
	f.mustSync()
	if code, body := get(t, "http://127.0.0.1:"+port+"/"); code != 200 || !strings.Contains(body, "hello") {
		t.Fatalf("first release: %d %s", code, body)
	}
	code, out := f.syncd("probe", "--app", app)
	if code != 0 || !strings.Contains(out, "<secret:api_token>") || strings.Count(out, " ok ") != 3 {
		t.Errorf("syncd probe on a good release: exit %d\n%s", code, out)
	}
	good := containers(t, app)

	// The next release answers 500 on / while its healthcheck passes.
	f.vars["MSG"] = "release two"
	f.vars["FAIL_PATH"] = "/"
	f.commit()
	code, out = f.syncd("sync")
	if code != 1 || !strings.Contains(out, app+": rolled back") || !strings.Contains(out, "probe home: GET http://127.0.0.1:"+port+"/?token=<redacted>: status 500, want 200") {
		t.Fatalf("release failing its probe: exit %d\n%s", code, out)
	}
	if code, body := get(t, "http://127.0.0.1:"+port+"/"); code != 200 || !strings.Contains(body, "hello") || strings.Contains(body, "release two") {
		t.Errorf("after the rollback: %d %s", code, body)
	}
	if now := containers(t, app); now[app+"/web"] == good[app+"/web"] {
		t.Errorf("the release was never applied: %v", now)
	}
	st, err := status.ReadLocal(f.state)
	if err != nil || st.State != status.Failed && st.State != status.Held {
		t.Errorf("status: %+v %v", st, err)
	}
	assertNoLeakInDir(t, f.state, f.values()...)
	// Held: the same commit is not tried again.
	if code, out := f.syncd("sync"); code != exitHeld {
		t.Errorf("the failed commit again: exit %d\n%s", code, out)
	}
}

// syncd probe checks each probe once and exits 1 when one fails; it needs
// no engine for http and tcp probes, and shows a secret by its name only.
func TestProbeCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("fine"))
	}))
	t.Cleanup(srv.Close)
	repo := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(repo, p)), 0o755)
		if err := os.WriteFile(filepath.Join(repo, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key, recip := secretstest.NewKey(t)
	write("apps/web/compose.yaml", "services:\n  web:\n    image: nginx:1.27.3\n")
	write("apps/web/app.yaml", "probes:\n  - name: home\n    http: {url: \""+srv.URL+"/?t=${token}\", body: fine}\n")
	write("apps/api/compose.yaml", "services:\n  api:\n    image: nginx:1.27.3\n")
	write("apps/api/app.yaml", "probes:\n  - name: broken\n    http: {url: \""+srv.URL+"/broken\"}\n")
	write("hosts/h1/host.yaml", "apps: [web, api]\n")
	// A restic repository on the same address: its value shares a long
	// prefix with every target, which must still show as written (issue
	// 18 item 10: fragment matching mangled them into
	// <secret:restic_repository>91/healthz).
	resticRepo := "rest:" + srv.URL + "/restic-Yankee-repo/"
	closed := freePort(t)
	write("apps/gone/compose.yaml", "services:\n  gone:\n    image: nginx:1.27.3\n")
	write("apps/gone/app.yaml", fmt.Sprintf("probes:\n  - name: refused\n    http: {url: \"http://127.0.0.1:%d/healthz\"}\n", closed))
	write("hosts/h1/host.yaml", "apps: [web, api, gone]\n")
	secretstest.WriteFile(t, filepath.Join(repo, "hosts", "h1", "secrets.sops.yaml"), recip, []byte("token: tok-Zulu-9a8b7c6d\nrestic_repository: "+resticRepo+"\n"))
	probe := func(extra ...string) (int, string) {
		var out, errOut strings.Builder
		code := run(t.Context(), append([]string{"probe", "--repo", repo, "--host", "h1", "--age-key", key}, extra...), os.Getenv, &out, &errOut)
		text := out.String() + errOut.String()
		secretstest.AssertNoLeak(t, "syncd probe", text, "tok-Zulu-9a8b7c6d")
		// The repository shares its address with the targets, which are
		// the user's own words: what must not show is the value, whole or
		// its own part.
		if strings.Contains(text, "Yankee") {
			t.Errorf("syncd probe shows the restic repository:\n%s", text)
		}
		return code, text
	}
	code, out := probe("--app", "web")
	if code != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), "web home http yes "+srv.URL+"/?t=<secret:token> ok") {
		t.Errorf("web: exit %d\n%s", code, out)
	}
	code, out = probe()
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, "status 500, want 2xx") {
		t.Errorf("all: exit %d\n%s", code, out)
	}
	target := fmt.Sprintf("http://127.0.0.1:%d/healthz", closed)
	if !strings.Contains(out, srv.URL+"/broken") || !strings.Contains(out, target) || !strings.Contains(out, "connection refused") || strings.Contains(out, "<secret:restic_repository>") {
		t.Errorf("the targets and errors are not shown as written:\n%s", out)
	}
	if code, out := probe("--app", "nope"); code != 1 || !strings.Contains(out, `host "h1" does not run app "nope"`) {
		t.Errorf("unknown app: exit %d\n%s", code, out)
	}
}

// TestAgentE2EProbesInTheStatus: the agent runs an app's probes between
// cycles; their first verdicts reach the status document without a cycle,
// and /metrics has them; a probe that goes down is published too.
func TestAgentE2EProbesInTheStatus(t *testing.T) {
	t.Parallel()
	testenv.DemoImage(t, probeImage, false)
	f := newFleetOf(t)
	app := testenv.ProjectName(t)
	port := strconv.Itoa(freePort(t))
	f.vars["WEB_PORT"] = port
	f.write("apps/"+app+"/compose.yaml", `services:
  web:
    image: `+probeImage+`
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
`+healthy)
	f.write("apps/"+app+"/app.yaml", `probes:
  - name: home
    schedule: "@every 1s"
    failure_threshold: 2
    http: {url: "http://127.0.0.1:${WEB_PORT}/", status: 200}
`)
	f.apps = append(f.apps, app)
	f.commit()
	a := startAgent(t, f, f.repo)
	probeState := func(want string) func(status.Host) bool {
		return func(h status.Host) bool {
			for _, p := range h.Projects {
				for _, pr := range p.Probes {
					if p.Name == app && pr.Name == "home" && pr.State == want {
						return true
					}
				}
			}
			return false
		}
	}
	waitStatus(t, f, a, "probe home up in the status", probeState("up"))
	if _, body := get(t, "http://"+a.addr+"/metrics"); !strings.Contains(body, `syncd_probe_up{kind="http",probe="home",project="`+app+`"} 1`) {
		t.Errorf("/metrics lacks the probe up")
	}
	testenv.DockerCLI(t, "stop", strings.Fields(containers(t, app)[app+"/web"])[0])
	waitStatus(t, f, a, "probe home down in the status", probeState("down"))
}
