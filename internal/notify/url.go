package notify

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"

	"github.com/syncd-dev/syncd/internal/redact"
)

// CheckURL reports whether shoutrrr accepts raw, without sending anything.
// The error never holds raw.
func CheckURL(raw string) error {
	_, err := router.New(nil, raw)
	if err == nil {
		return nil
	}
	r := &router.ServiceRouter{}
	switch {
	case errors.Is(err, router.ErrParseURLFailed):
		return errors.New("not a URL")
	case errors.Is(err, router.ErrUnknownService):
		return fmt.Errorf("unknown service %q; see https://shoutrrr.nickfedor.com/ for the services and their URLs (known: %s)",
			schemeOf(raw), strings.Join(r.ListServices(), ", "))
	default:
		return fmt.Errorf("%s does not accept this URL: %s", schemeOf(raw), scrub(err.Error(), raw))
	}
}

func schemeOf(raw string) string {
	s, _, _ := strings.Cut(raw, ":")
	s, _, _ = strings.Cut(s, "+")
	return s
}

// scrub removes raw, and any URL, from s, leaving scheme://host of each
// (a shoutrrr URL may hold a token in any part); a part of raw long enough
// to be a token (the password, the user, a path segment, a query value) is
// hidden wherever it shows on its own, decoded too.
func scrub(s, raw string) string {
	var parts []string
	if u, err := url.Parse(raw); err == nil {
		if p, ok := u.User.Password(); ok {
			parts = append(parts, p)
		}
		parts = append(parts, u.User.Username())
		parts = append(parts, strings.Split(u.Path, "/")...)
		for _, vs := range u.Query() {
			parts = append(parts, vs...)
		}
	}
	parts = slices.DeleteFunc(parts, func(p string) bool { return len(p) < 6 })
	return redact.New(nil, parts...).Text(redact.Hosts(strings.ReplaceAll(s, raw, redact.Host(raw))))
}
