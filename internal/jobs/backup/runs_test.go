package backup

import (
	"errors"
	"strings"
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

// TestSnapshotCheckRefusesWhatSyncdNeverWrites: tags, paths and names of
// a snapshot are data another host may have crafted; a kind or name that
// would leave its directory, or any control character, is refused, and
// the error names the snapshot.
func TestSnapshotCheckRefusesWhatSyncdNeverWrites(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	base := []string{"host:h1", "app:db", "run:r1", "parts:1"}
	mk := func(paths []string, tags ...string) Snapshot {
		return Snapshot{ID: id, ShortID: id[:8], Hostname: "h1", Paths: paths, Tags: append(append([]string{}, base...), tags...)}
	}
	good := []Snapshot{
		mk([]string{"/var/lib/docker/volumes/db_data/_data"}, "volume:data"),
		mk([]string{"/srv/app/uploads", "/srv/app/my..dir"}, "paths"),
		mk([]string{"/db.sql"}, "dump:db.sql", "pre-restore", "commit:abc123"),
	}
	for _, s := range good {
		if err := s.check(); err != nil {
			t.Errorf("%v %v: %v", s.Tags, s.Paths, err)
		}
	}
	bad := map[string]Snapshot{
		`tag "volume:../../../tmp/victim"`: mk([]string{"/x"}, "volume:../../../tmp/victim"),
		`tag "dump:../../x"`:               mk([]string{"/x"}, "dump:../../x"),
		`tag "dump:a/b"`:                   mk([]string{"/a/b"}, "dump:a/b"),
		`tag "volume:.."`:                  mk([]string{"/x"}, "volume:.."),
		`"volume:a\x00b" holds a control`:  mk([]string{"/x"}, "volume:a\x00b"),
		`tag "app:../db"`:                  {ID: id, ShortID: id[:8], Hostname: "h1", Paths: []string{"/x"}, Tags: []string{"host:h1", "app:../db", "paths"}},
		`holds a control character`:        mk([]string{"/x"}, "paths", "note\x1b[2J"),
		`more than one host: tag`:          mk([]string{"/x"}, "paths", "host:h2"),
		`tags of 2 kinds`:                  mk([]string{"/x"}, "paths", "volume:data"),
		`path "/srv/../etc": not clean`:    mk([]string{"/srv/../etc"}, "paths"),
		`path "etc": not absolute`:         mk([]string{"etc"}, "paths"),
		`path "/x" twice`:                  mk([]string{"/x", "/x"}, "paths"),
		`a volume's part saves one`:        mk([]string{"/a", "/b"}, "volume:data"),
		`a dump's part saves the one file`: mk([]string{"/etc/passwd"}, "dump:db.sql"),
		`not only hex digits`:              {ID: id, ShortID: id[:8], Hostname: "h1", Paths: []string{"/x"}, Tags: []string{"host:h1", "app:db", "run:0123abcd", "parts:1", "paths"}},
		`tag "run:-x": a run ID`:           {ID: id, ShortID: id[:8], Hostname: "h1", Paths: []string{"/x"}, Tags: []string{"host:h1", "app:db", "run:-x", "parts:1", "paths"}},
		`its ID is not restic's`:           {ID: "--target=/", Hostname: "h1", Paths: []string{"/x"}, Tags: append(append([]string{}, base...), "paths")},
	}
	for want, s := range bad {
		err := s.check()
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%q %q: %v; want %q", s.Tags, s.Paths, err, want)
			continue
		}
		if s.ID == id && !strings.Contains(err.Error(), "refused snapshot "+id[:8]) {
			t.Errorf("the error does not name the snapshot: %v", err)
		}
	}
}

func TestRunWithAPartTwiceIsIncomplete(t *testing.T) {
	r := Run{ID: "r1", Snapshots: []Snapshot{
		snap("a", 1, "host:h1", "app:db", "run:r1", "parts:1", "volume:data"),
		snap("b", 1, "host:h1", "app:db", "run:r1", "parts:1", "volume:data"),
	}}
	if r.Complete() {
		t.Error("a run of one part with two snapshots of it is complete")
	}
}

// TestPickSnapshotIDWins: run tags are written by whoever holds the
// repository's password, snapshot IDs are hashes. A run tagged with the
// start of another run's snapshot ID never shadows that snapshot, and a
// short ID that two runs' snapshots share is refused.
func TestPickSnapshotIDWins(t *testing.T) {
	const victim = "aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff6666aaaa7777bbbb8888"
	runs := []Run{
		{ID: "aaaa1111", Snapshots: []Snapshot{{ID: "9999" + victim[4:]}}}, // newest: the attacker's
		{ID: "20261201T030000Z-a1b2c3", Snapshots: []Snapshot{{ID: victim}}},
		{ID: "20261130T030000Z-d4e5f6", Snapshots: []Snapshot{{ID: "aaaa1111" + strings.Repeat("0", 56)}}},
	}
	for sel, want := range map[string]string{
		victim:                    "20261201T030000Z-a1b2c3",
		victim[:12]:               "20261201T030000Z-a1b2c3",
		"20261130T030000Z-d4e5f6": "20261130T030000Z-d4e5f6",
	} {
		if got, err := pick(runs, sel); err != nil || got.ID != want {
			t.Errorf("pick(%q) = %q, %v; want %q", sel, got.ID, err, want)
		}
	}
	if got, err := pick(runs, victim[:8]); err == nil || !strings.Contains(err.Error(), "snapshots of 2 runs") {
		t.Errorf("pick of a short ID two runs share = %q, %v; want it refused", got.ID, err)
	}
	if _, err := pick(runs, "nosuch"); err == nil || !strings.Contains(err.Error(), "neither a run nor a snapshot") {
		t.Errorf("pick(nosuch): %v", err)
	}
}
