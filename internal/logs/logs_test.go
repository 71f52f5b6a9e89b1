package logs

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestOneComponentPerLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Components(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime})))
	jobs := log.With("component", "jobs")
	jobs.With("component", "restic", "repo", "s3").Info("backup", "app", "wiki")
	jobs.Info("recover")
	log.Info("plain")
	jobs.Info("asked", "component", "backup")
	jobs.WithGroup("g").With("component", "inner").Info("grouped")
	want := []string{
		`level=INFO msg=backup repo=s3 component=jobs/restic app=wiki`,
		`level=INFO msg=recover component=jobs`,
		`level=INFO msg=plain`,
		`level=INFO msg=asked component=jobs/backup`,
		`level=INFO msg=grouped component=jobs g.component=inner`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestJSONOneComponent(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Components(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime})))
	log.With("component", "jobs").With("component", "restic").Warn("x")
	if got, want := strings.TrimSpace(buf.String()), `{"level":"WARN","msg":"x","component":"jobs/restic"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func noTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
