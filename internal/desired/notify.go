package desired

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/notify"
	"github.com/syncd-dev/syncd/internal/redact"
)

// NotifySink is one entry of syncd.yaml `notify:`: where state changes are
// sent (a shoutrrr URL) and which (none listed: every event).
type NotifySink struct {
	URL string `yaml:"url"`
	// URLSecret names the key of each host's secrets file that holds the
	// URL, for a URL that carries a token.
	URLSecret string   `yaml:"url_secret"`
	Events    []string `yaml:"events"`
}

func checkNotify(p string, n *yaml.Node, sinks []NotifySink, ps *Problems) {
	for i, s := range sinks {
		at := func(keys ...string) int { return lineOf(n, append([]string{"notify", fmt.Sprint(i)}, keys...)...) }
		if (s.URL == "") == (s.URLSecret == "") {
			ps.add(p, at(), "notify[%d]: set exactly one of url or url_secret (a URL that carries a token belongs in the hosts' secrets)", i)
		}
		if s.URL != "" {
			if err := notify.CheckURL(s.URL); err != nil {
				ps.add(p, at("url"), "notify[%d].url (%s): %v", i, redact.Host(s.URL), err)
			}
		}
		for j, e := range s.Events {
			if !notify.KnownEvent(e) {
				ps.add(p, at("events", fmt.Sprint(j)), "notify[%d].events: unknown event %q; known: %s", i, e, strings.Join(notify.EventNames(), ", "))
			} else if slices.Index(s.Events, e) < j {
				ps.add(p, at("events", fmt.Sprint(j)), "notify[%d].events: %q is listed twice", i, e)
			}
		}
	}
}
