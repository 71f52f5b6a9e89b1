package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/syncd-dev/syncd/internal/bootstrap"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/status"
)

// selfMadeKey marks, in its header, an age key the host made itself: only
// such a key may leave the host enrolling (apps with secrets waiting) rather
// than failed when it cannot open the host's secrets.
const selfMadeKey = "made by syncd on this host"

// selfEnrol makes the host's age key at path when there is none (0600,
// never replacing one) and returns its recipient and the reconciler's
// Enrolling; the private key never leaves the host.
func selfEnrol(path, host string, log *slog.Logger) (recipient string, e *enrolling) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		recipient, err = secrets.GenerateIdentityFile(path, selfMadeKey+" ("+host+"); `syncd enroll --host "+host+"` adds its public key to .sops.yaml")
		if err != nil {
			// A host without secrets runs without a key; one with secrets
			// reports the missing key in its cycles.
			log.Warn("cannot make the host's age key; hosts with secrets need one", "err", err)
			return "", &enrolling{}
		}
		log.Info("made the host's own age key; its recipient is published in the status for `syncd enroll`", "file", path, "recipient", recipient)
	}
	id, err := secrets.LoadIdentity(path)
	if err != nil {
		// The cycle reports the same error where the host has secrets.
		return "", &enrolling{}
	}
	if rs := id.Recipients(); len(rs) > 0 {
		recipient = rs[0]
	}
	head, _ := os.ReadFile(path)
	return recipient, &enrolling{selfMade: strings.Contains(string(head), selfMadeKey)}
}

// enrolling is reconcile.Enrolling: a self-made key that is not yet a
// recipient means the host waits for `syncd enroll`.
type enrolling struct{ selfMade bool }

func (e *enrolling) Pending(err error) bool {
	return e.selfMade && errors.Is(err, secrets.ErrNotRecipient)
}

func (e *enrolling) Keys(name string, data []byte) ([]string, error) {
	return secrets.Inspect(name, data)
}

// enrolment is what the host publishes for `syncd enroll --token`: the
// MAC over its name, age recipient and status key under the one-time
// secret in tokenFile (init-host's, from the user-data), and the function
// that deletes that file once the host sees itself enrolled. No file (not
// given, or deleted after enrolment) publishes nothing.
func enrolment(tokenFile, host, recipient string, writer *status.Writer, log *slog.Logger) (mac string, enrolled func()) {
	if tokenFile == "" || writer == nil || writer.Key == nil {
		return "", nil
	}
	secret, err := bootstrap.ReadToken(tokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		log.Warn("the enrolment token cannot be read; the host publishes no enrolment MAC, so `syncd enroll --token` will refuse it", "err", err)
		return "", nil
	}
	return bootstrap.EnrolmentMAC(secret, host, recipient, writer.Key.Public()), func() {
		if err := os.Remove(tokenFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("enrolled, but the enrolment token cannot be deleted; delete it", "file", tokenFile, "err", err)
			return
		}
		log.Info("enrolled: deleted the one-time enrolment token", "file", tokenFile)
	}
}
