package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// GotifyToken is the application token the gotify sink of NotifySinks
// takes (gotify's form: 15 characters, starting with A).
const GotifyToken = "AsyncdTest0a1b2"

// Notification is what one sink of NotifySinks received, decoded as the
// service's own server would: the title (empty where the service sends
// none) and the body.
type Notification struct {
	Title, Body string
}

// NotifySink is a loopback server that takes what one shoutrrr service
// sends: URL is the shoutrrr URL that points the service at it.
type NotifySink struct {
	Service, URL string
	got          chan Notification
}

// Next is the next notification the sink received; the test fails when
// none comes within 20s.
func (s *NotifySink) Next(t testing.TB, what string) Notification {
	t.Helper()
	select {
	case n := <-s.got:
		return n
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no notification reached the sink: %s", s.Service, what)
		return Notification{}
	}
}

// NotifySinks starts one loopback sink per shoutrrr service a home-made or
// self-hosted setup commonly uses: the generic webhook with its plain
// payload (the message alone: the title is dropped) and with its JSON
// template, ntfy and gotify. Each checks the request as its server would
// (path, token) and answers it as that server does; a request it does not
// expect fails the test.
func NotifySinks(t testing.TB) []*NotifySink {
	t.Helper()
	type decoder func(r *http.Request, body []byte) (Notification, string)
	start := func(service string, url func(addr string) string, decode decoder, answer string) *NotifySink {
		s := &NotifySink{Service: service, got: make(chan Notification, 64)}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			n, bad := decode(r, body)
			if r.Method != http.MethodPost {
				bad = "method " + r.Method
			}
			if bad != "" {
				t.Errorf("%s sink: unexpected request %s %s: %s", service, r.Method, r.URL.Path, bad)
				http.Error(w, bad, http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, answer)
			s.got <- n
		}))
		t.Cleanup(srv.Close)
		s.URL = url(strings.TrimPrefix(srv.URL, "http://"))
		return s
	}
	jsonOf := func(body []byte, title, message string) (Notification, string) {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			return Notification{}, "not JSON: " + err.Error()
		}
		t, _ := m[title].(string)
		b, _ := m[message].(string)
		return Notification{Title: t, Body: b}, ""
	}
	return []*NotifySink{
		start("generic", func(a string) string { return "generic+http://" + a + "/hook" },
			func(r *http.Request, body []byte) (Notification, string) {
				if r.URL.Path != "/hook" {
					return Notification{}, "path"
				}
				return Notification{Body: string(body)}, ""
			}, ""),
		start("generic (template=json)", func(a string) string { return "generic+http://" + a + "/hook?template=json" },
			func(r *http.Request, body []byte) (Notification, string) {
				if r.URL.Path != "/hook" {
					return Notification{}, "path"
				}
				return jsonOf(body, "title", "message")
			}, ""),
		start("ntfy", func(a string) string { return "ntfy://" + a + "/syncd?scheme=http" },
			func(r *http.Request, body []byte) (Notification, string) {
				if r.URL.Path != "/syncd" {
					return Notification{}, "path (the topic)"
				}
				return Notification{Title: r.Header.Get("Title"), Body: string(body)}, ""
			}, `{"id":"1","event":"message"}`),
		start("gotify", func(a string) string { return "gotify://" + a + "/" + GotifyToken + "?disabletls=yes" },
			func(r *http.Request, body []byte) (Notification, string) {
				if r.URL.Path != "/message" || r.URL.Query().Get("token") != GotifyToken {
					return Notification{}, "path or token"
				}
				return jsonOf(body, "title", "message")
			}, `{"id":1}`),
	}
}
