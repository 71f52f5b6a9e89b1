package backup

import (
	"testing"
	"time"
)

func snap(id string, at int, tags ...string) Snapshot {
	return Snapshot{ID: id, Hostname: "h1", Time: time.Date(2026, 1, at, 3, 0, 0, 0, time.UTC), Tags: tags}
}

func TestNewestComplete(t *testing.T) {
	base := []string{"host:h1", "app:db"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	tests := []struct {
		name  string
		snaps []Snapshot
		want  string // run ID, "" for none
	}{
		{"one complete run", []Snapshot{
			snap("a", 1, with("run:r1", "parts:2", "paths")...),
			snap("b", 1, with("run:r1", "parts:2", "dump:db.sql")...),
		}, "r1"},
		{"newest run's dump failed", []Snapshot{
			snap("a", 1, with("run:r1", "parts:2", "paths")...),
			snap("b", 1, with("run:r1", "parts:2", "dump:db.sql")...),
			snap("c", 2, with("run:r2", "parts:2", "paths")...),
		}, "r1"},
		{"newest run partial", []Snapshot{
			snap("a", 1, with("run:r1", "parts:1", "paths")...),
			snap("c", 2, with("run:r2", "parts:1", "paths", "partial")...),
		}, "r1"},
		{"same kind twice does not make up for a missing dump", []Snapshot{
			snap("a", 2, with("run:r2", "parts:2", "paths")...),
			snap("b", 2, with("run:r2", "parts:2", "paths")...),
		}, ""},
		{"other host and app ignored", []Snapshot{
			snap("a", 1, with("run:r1", "parts:1", "paths")...),
			{ID: "x", Hostname: "h2", Time: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), Tags: []string{"host:h2", "app:db", "run:r9", "parts:1", "paths"}},
			snap("y", 6, "host:h1", "app:web", "run:r8", "parts:1", "paths"),
		}, "r1"},
		{"no parts tag", []Snapshot{snap("a", 1, with("run:r1", "paths")...)}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := NewestComplete(tt.snaps, "h1", "db")
			if ok != (tt.want != "") || r.ID != tt.want {
				t.Fatalf("NewestComplete = %q, %v; want %q", r.ID, ok, tt.want)
			}
		})
	}
}
