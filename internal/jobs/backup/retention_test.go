package backup

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestRetention backdates snapshots over ten months and finds forget
// keeping exactly 7 daily, 4 weekly and 6 monthly ones (one kind).
func TestRetention(t *testing.T) {
	r := newRepo(t, filepath.Join(t.TempDir(), "repo"), testPassword)
	ctx := t.Context()
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(24 * time.Hour).Add(12 * time.Hour)
	var days []int
	for d := 0; d < 10; d++ { // ten daily
		days = append(days, d)
	}
	for d := 14; d < 70; d += 7 { // weekly
		days = append(days, d)
	}
	for d := 90; d < 300; d += 30 { // monthly
		days = append(days, d)
	}
	for i, d := range days {
		p := Part{Host: "h1", App: "db", Run: "r" + time.Duration(i).String(), Parts: 1, Kind: "dump:db.sql", Time: now.AddDate(0, 0, -d)}
		if _, err := r.BackupStream(ctx, p, "db.sql", command("echo", "x")); err != nil {
			t.Fatal(err)
		}
	}
	groups, err := r.Forget(ctx, "h1", "db", Keep{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, g := range groups {
		for _, rs := range g.Reasons {
			for _, m := range rs.Matches {
				count[m]++
			}
		}
	}
	if count["daily snapshot"] != 7 || count["weekly snapshot"] != 4 || count["monthly snapshot"] != 6 {
		t.Fatalf("kept %v, want 7 daily, 4 weekly, 6 monthly", count)
	}
}

// TestRetentionPerKind: ten daily runs of a dump and of a volume, with
// keep-daily 3, keep three of each (one kind never thins out the other);
// the parts of a pre-restore run are kept besides.
func TestRetentionPerKind(t *testing.T) {
	r := newRepo(t, filepath.Join(t.TempDir(), "repo"), testPassword)
	ctx := t.Context()
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "vol")
	writeFile(t, filepath.Join(dir, "f"), []byte("data"))
	now := time.Now().Truncate(24 * time.Hour).Add(12 * time.Hour)
	for d := range 10 {
		run := fmt.Sprintf("r%d", d)
		p := Part{Host: "h1", App: "db", Run: run, Parts: 2, Kind: "dump:db.sql", Time: now.AddDate(0, 0, -d)}
		if d == 5 {
			p.Extra = []string{"pre-restore"}
		}
		if _, err := r.BackupStream(ctx, p, "db.sql", command("echo", "x")); err != nil {
			t.Fatal(err)
		}
		p.Kind = "volume:data"
		if _, err := r.Backup(ctx, p, dir); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Forget(ctx, "h1", "db", Keep{Daily: 3}); err != nil {
		t.Fatal(err)
	}
	snaps, err := r.Snapshots(ctx, "h1", "db")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, s := range snaps {
		kinds[s.Kind()]++
	}
	// three daily of each kind, and both parts of the pre-restore run r5
	if kinds["dump:db.sql"] != 4 || kinds["volume:data"] != 4 {
		t.Errorf("kept %v, want 4 of each kind (3 daily and the pre-restore run's)", kinds)
	}
}
