package desired

import (
	"strings"
	"testing"
)

func TestLoadNotify(t *testing.T) {
	const token = "tk_3a4b5c6d7e"
	cases := []struct {
		name, yaml string
		want       []string // substrings of the problems; none: clean
	}{
		{"url and secret", "notify:\n  - url: ntfy://ntfy.example/alerts\n    events: [backup_failed, backup_recovered]\n  - url_secret: SLACK_URL\n", nil},
		{"neither", "notify:\n  - events: [drift]\n",
			[]string{"syncd.yaml:2: error: notify[0]: set exactly one of url or url_secret"}},
		{"both", "notify:\n  - url: ntfy://ntfy.example/alerts\n    url_secret: NTFY\n",
			[]string{"syncd.yaml:2: error: notify[0]: set exactly one of url or url_secret"}},
		{"unknown service", "notify:\n  - url: nosuch://" + token + "@example\n",
			[]string{`syncd.yaml:2: error: notify[0].url (nosuch://example): unknown service "nosuch"`}},
		{"not a URL", "notify:\n  - url: \"::" + token + "\"\n", []string{"syncd.yaml:2: error: notify[0].url", "not a URL"}},
		{"unknown event", "notify:\n  - url: ntfy://ntfy.example/alerts\n    events:\n      - backup_failed\n      - backup_fail\n",
			[]string{`syncd.yaml:5: error: notify[0].events: unknown event "backup_fail"; known: backup_failed, backup_recovered,`}},
		{"event twice", "notify:\n  - url: ntfy://ntfy.example/alerts\n    events: [drift, drift]\n",
			[]string{`notify[0].events: "drift" is listed twice`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ps := Load(writeRepo(t, with(baseRepo, map[string]string{"syncd.yaml": c.yaml})))
			text := ps.Error()
			if strings.Contains(text, token) {
				t.Errorf("a problem shows the URL's token:\n%s", text)
			}
			if c.want == nil {
				if len(ps) > 0 {
					t.Errorf("problems:\n%s", text)
				}
				if len(r.Fleet.Notify) != 2 || r.Fleet.Notify[1].URLSecret != "SLACK_URL" {
					t.Errorf("Fleet.Notify = %+v", r.Fleet.Notify)
				}
				return
			}
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("problems lack %q:\n%s", w, text)
				}
			}
		})
	}
}
