package desired

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/redact"
)

// leakIn returns what of a secret value text holds: the value, or a run of
// redact.FragmentLen of its bytes; "" when nothing. (secretstest.LeakIn does the
// same; desired's tests do not link sops.)
func leakIn(text string, values ...string) string {
	for _, v := range values {
		if v == "" {
			continue
		}
		if strings.Contains(text, v) {
			return fmt.Sprintf("the value %q", v)
		}
		for i := 0; i+redact.FragmentLen <= len(v); i++ {
			if strings.Contains(text, v[i:i+redact.FragmentLen]) {
				return fmt.Sprintf("the fragment %q of %q", v[i:i+redact.FragmentLen], v)
			}
		}
	}
	return ""
}

func TestRedactScalarWords(t *testing.T) {
	s := Secrets{"pass": "correct horse battery-staple"}
	for in, want := range map[string]string{
		"correct":                      Redacted(s["pass"]),
		"battery-staple":               Redacted(s["pass"]),
		"correct horse battery-staple": Redacted(s["pass"]),
		"--password":                   "--password",
		"cor":                          "cor",
	} {
		if got := s.redactScalar(in); got != want {
			t.Errorf("redactScalar(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRenderNeverLeaks puts a secret where the Compose loader rejects it
// (and where it accepts it) and checks every problem and the rendered YAML
// for the value and any FragmentLen-byte run of it.
func TestRenderNeverLeaks(t *testing.T) {
	values := []string{
		"s3cr3t-Planted-Value-42",
		`s3cr3t-Planted"Value-42`,
		"s3cr3t-Planted\nValue-42-second-line",
		`s3cr3t-Planted-Välue-42\x`,
		strings.Repeat("s3cr3t-Planted-Value-42/", 8),
		"s3cr3t Planted Value 42 words",
	}
	svc := "services:\n  web:\n    image: nginx:1.27.3\n"
	placements := map[string]string{
		"port":               svc + "    ports: [\"${TOKEN}:80\"]\n",
		"port long syntax":   svc + "    ports:\n      - target: ${TOKEN}\n",
		"host ip":            svc + "    ports: [\"${TOKEN}:8080:80\"]\n",
		"mem_limit":          svc + "    mem_limit: ${TOKEN}\n",
		"cpus":               svc + "    cpus: ${TOKEN}\n",
		"pids_limit":         svc + "    pids_limit: ${TOKEN}\n",
		"shm_size":           svc + "    shm_size: ${TOKEN}\n",
		"privileged":         svc + "    privileged: ${TOKEN}\n",
		"stop_grace_period":  svc + "    stop_grace_period: ${TOKEN}\n",
		"healthcheck":        svc + "    healthcheck:\n      test: [CMD, x]\n      interval: ${TOKEN}\n",
		"ulimit":             svc + "    ulimits:\n      nofile: ${TOKEN}\n",
		"replicas":           svc + "    deploy:\n      replicas: ${TOKEN}\n",
		"pull_policy":        svc + "    pull_policy: ${TOKEN}\n",
		"restart":            svc + "    restart: ${TOKEN}\n",
		"depends_on":         svc + "    depends_on: [\"${TOKEN}\"]\n",
		"network":            svc + "    networks: [\"${TOKEN}\"]\n",
		"volume":             svc + "    volumes: [\"${TOKEN}:/data\"]\n",
		"extends":            svc + "    extends: ${TOKEN}\n",
		"extra_hosts":        svc + "    extra_hosts: [\"${TOKEN}\"]\n",
		"container_name":     svc + "    container_name: ${TOKEN}\n",
		"image":              "services:\n  web:\n    image: ${TOKEN}\n",
		"label":              svc + "    labels:\n      auth: \"Bearer ${TOKEN}\"\n",
		"command words":      svc + "    command: \"serve --token ${TOKEN} --verbose\"\n",
		"entrypoint words":   svc + "    entrypoint: \"/bin/app ${TOKEN}\"\n",
		"healthcheck words":  svc + "    healthcheck:\n      test: \"curl -H 'X-Token: ${TOKEN}' http://x\"\n",
		"next to undefined":  svc + "    environment:\n      A: ${TOKEN}\n      B: ${UNDEFINED_NAME}\n",
		"undefined in alt":   svc + "    environment:\n      A: ${TOKEN:+${UNDEFINED_NAME}}\n",
		"as a secret":        svc + "    secrets: [TOKEN]\n",
		"config content":     svc + "    configs: [c]\nconfigs:\n  c:\n    content: \"token=${TOKEN}\"\n",
		"network name":       svc + "    networks: [n]\nnetworks:\n  n:\n    name: ${TOKEN}\n",
		"volume driver opts": svc + "    volumes: [v:/x]\nvolumes:\n  v:\n    driver_opts:\n      o: ${TOKEN}\n",
	}
	for name, compose := range placements {
		for i, v := range values {
			t.Run(fmt.Sprintf("%s/%d", name, i), func(t *testing.T) {
				files := with(baseRepo, map[string]string{
					"apps/web/compose.yaml":        compose,
					"hosts/beta/secrets.sops.yaml": "the test hands values in\n",
				})
				r := mustLoad(t, files)
				secrets := Secrets{"TOKEN": v, "OTHER": "an0ther-Secret-Value"}
				projects, ps := r.Render(context.Background(), "beta", secrets)
				if leak := leakIn(ps.Error(), secrets["TOKEN"], secrets["OTHER"]); leak != "" {
					t.Errorf("problems leak %s:\n%s", leak, ps.Error())
				}
				for _, p := range projects {
					out, err := p.YAML(secrets)
					if err != nil {
						if leak := leakIn(err.Error(), v); leak != "" {
							t.Errorf("YAML error leaks %s: %v", leak, err)
						}
						continue
					}
					if leak := leakIn(string(out), v); leak != "" {
						t.Errorf("rendered YAML leaks %s:\n%s", leak, out)
					}
				}
			})
		}
	}
}
