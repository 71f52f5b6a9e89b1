package reconcile

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
)

// keyNotEnrolled is what the wiring hands a host whose self-made key is
// not yet a recipient.
type keyNotEnrolled struct{}

func (keyNotEnrolled) Pending(err error) bool { return errors.Is(err, secrets.ErrNotRecipient) }
func (keyNotEnrolled) Keys(name string, data []byte) ([]string, error) {
	return secrets.Inspect(name, data)
}

// TestEnrollingAppliesOnlyAppsWithoutSecrets: db needs a secret, web
// follows db, cache needs nothing: only cache is applied, and db and web
// are neither created nor pruned until the key can decrypt.
func TestEnrollingAppliesOnlyAppsWithoutSecrets(t *testing.T) {
	f := newFixture(t)
	f.write("apps/db/compose.yaml", "services:\n  db:\n    image: postgres:${PG_VERSION}\n    secrets: [db_password]\n")
	f.write("apps/cache/compose.yaml", "services:\n  cache:\n    image: redis:7.4\n")
	f.host("1.0.0", "hello", "db", "web", "cache")
	_, operator := secretstest.NewKey(t)
	secretstest.WriteFile(t, filepath.Join(f.dir, "hosts/h1/secrets.sops.yaml"), operator, []byte("db_password: pw-Echo-0a9s8d7f6g\n"))
	hostKey, _ := secretstest.NewKey(t)
	id, err := secrets.LoadIdentity(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	f.r.Decrypter = secrets.Decrypter{Identity: id}

	if _, err := f.sync(); !errors.Is(err, ErrSecrets) {
		t.Fatalf("without Enrolling: err = %v, want ErrSecrets", err)
	}
	f.r.Enrolling = keyNotEnrolled{}
	rep, err := f.sync()
	if err != nil {
		t.Fatal(err)
	}
	if got := results(rep); got != "cache=applied" {
		t.Errorf("outcomes %s", got)
	}
	if !rep.SecretsPending || !slices.Equal(rep.Pending, []string{"db", "web"}) {
		t.Errorf("pending %v %v", rep.SecretsPending, rep.Pending)
	}
	for _, p := range []string{"db", "web"} {
		if _, ok := f.eng.projects[p]; ok {
			t.Errorf("%s applied before the key is enrolled", p)
		}
	}
	// A key that is not the problem (the file is damaged) is still an error.
	f.write("hosts/h1/secrets.sops.yaml", "db_password: plaintext\n")
	if _, err := f.sync(); !errors.Is(err, ErrSecrets) {
		t.Errorf("damaged file while enrolling: err = %v, want ErrSecrets", err)
	}
}
