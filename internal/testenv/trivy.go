package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Advisory is one entry of a test vulnerability DB: a Go module whose
// versions below Fixed have the finding ID at Severity (UNKNOWN … CRITICAL).
// Fixed "" is a finding without a fix (every version affected).
type Advisory struct {
	ID, Module, Fixed, Severity string
}

// VulnerableModule is the module (and version) that VulnerableDemoImage's
// binary contains and the demo image's does not; an Advisory for it with
// a Fixed above VulnerableVersion makes that image vulnerable.
const (
	VulnerableModule  = "github.com/docker/go-units"
	VulnerableVersion = "v0.5.0"
)

// TrivyCache writes a trivy cache directory holding a vulnerability DB
// (db/trivy.db, bbolt, schema 2, and db/metadata.json) with only advs, as
// built at updatedAt, and returns the directory. Its layout is
// trivy-db's: bucket "vulnerability" (ID → details, severity per source),
// "data-source", and "go::GitHub Security Advisory Go" → module → ID →
// affected versions.
func TrivyCache(t testing.TB, updatedAt time.Time, advs ...Advisory) string {
	t.Helper()
	dir := t.TempDir()
	WriteTrivyDB(t, dir, updatedAt, advs...)
	return dir
}

// WriteTrivyDB (re)writes the DB of the trivy cache directory dir.
func WriteTrivyDB(t testing.TB, dir string, updatedAt time.Time, advs ...Advisory) {
	t.Helper()
	dbDir := filepath.Join(dir, "db")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dbDir, "trivy.db")
	_ = os.Remove(path)
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const source = "go::GitHub Security Advisory Go"
	severity := map[string]int{"UNKNOWN": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
	err = db.Update(func(tx *bolt.Tx) error {
		put := func(v any, key string, buckets ...string) error {
			b, err := tx.CreateBucketIfNotExists([]byte(buckets[0]))
			if err != nil {
				return err
			}
			for _, n := range buckets[1:] {
				if b, err = b.CreateBucketIfNotExists([]byte(n)); err != nil {
					return err
				}
			}
			data, err := json.Marshal(v)
			if err != nil {
				return err
			}
			return b.Put([]byte(key), data)
		}
		if _, err := tx.CreateBucketIfNotExists([]byte("vulnerability")); err != nil {
			return err
		}
		if err := put(map[string]string{"ID": "ghsa", "Name": "GitHub Security Advisory Go", "URL": "https://github.com/advisories?query=type%3Areviewed+ecosystem%3Ago"}, source, "data-source"); err != nil {
			return err
		}
		for _, a := range advs {
			adv := map[string][]string{}
			if a.Fixed != "" {
				adv["VulnerableVersions"] = []string{"<" + a.Fixed}
				adv["PatchedVersions"] = []string{a.Fixed}
			} else {
				adv["VulnerableVersions"] = []string{">=0.0.0"}
			}
			if err := put(adv, a.ID, source, a.Module); err != nil {
				return err
			}
			detail := map[string]any{
				"Title":          "test advisory " + a.ID,
				"Severity":       a.Severity,
				"VendorSeverity": map[string]int{"ghsa": severity[a.Severity]},
			}
			if err := put(detail, a.ID, "vulnerability"); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(map[string]any{
		"Version":      2,
		"NextUpdate":   updatedAt.Add(24 * time.Hour),
		"UpdatedAt":    updatedAt,
		"DownloadedAt": updatedAt,
	})
	if err := os.WriteFile(filepath.Join(dbDir, "metadata.json"), meta, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TrivyEnv is an environment for trivy scanning offline with the DB in
// cacheDir: nothing is downloaded, no version check, no telemetry.
func TrivyEnv(cacheDir string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return len(kv) > 6 && kv[:6] == "TRIVY_" })
	return append(env,
		"TRIVY_CACHE_DIR="+cacheDir,
		"TRIVY_SKIP_DB_UPDATE=true",
		"TRIVY_SKIP_JAVA_DB_UPDATE=true",
		"TRIVY_OFFLINE_SCAN=true",
		"TRIVY_SKIP_VERSION_CHECK=true",
		"TRIVY_DISABLE_TELEMETRY=true",
	)
}

// CriticalAdvisory is a CRITICAL finding, fixed in 0.5.1, of
// VulnerableModule: VulnerableDemoImage has it.
var CriticalAdvisory = Advisory{ID: "CVE-2099-0001", Module: VulnerableModule, Fixed: "0.5.1", Severity: "CRITICAL"}

// Trivy returns the pinned trivy binary and a trivy cache directory whose
// DB (built an hour ago) holds advs, or ends the test (Tool) when there is
// no trivy. Scan offline with TrivyEnv(cacheDir).
func Trivy(t testing.TB, advs ...Advisory) (bin, cacheDir string) {
	t.Helper()
	bin = Tool(t, "trivy")
	return bin, TrivyCache(t, time.Now().UTC().Add(-time.Hour), advs...)
}
