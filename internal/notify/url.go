package notify

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
)

// Redacted shows a sink URL as scheme://host, which never holds its token.
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(a notify URL)"
	}
	return u.Scheme + "://" + u.Host
}

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

// urlRE finds URLs in error text: net/http puts the full request URL in its
// errors, and shoutrrr puts the service URL in some of its own.
var urlRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]*[^\s"'<>:.,;)]`)

// scrub removes raw, and any URL, from s, leaving scheme://host of each.
func scrub(s, raw string) string {
	if raw != "" {
		s = strings.ReplaceAll(s, raw, Redacted(raw))
	}
	s = urlRE.ReplaceAllStringFunc(s, Redacted)
	// A token may also show decoded or on its own (a path segment, a query
	// value, the password): blank every part of raw that is long enough to
	// be one.
	if u, err := url.Parse(raw); err == nil {
		var parts []string
		if p, ok := u.User.Password(); ok {
			parts = append(parts, p)
		}
		parts = append(parts, u.User.Username())
		parts = append(parts, strings.Split(u.Path, "/")...)
		for _, vs := range u.Query() {
			parts = append(parts, vs...)
		}
		for _, p := range parts {
			if len(p) >= 6 {
				s = strings.ReplaceAll(s, p, "[REDACTED]")
			}
		}
	}
	return s
}
