package bootstrap

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
)

// Enrolment is what a host publishes for `syncd enroll --token`: the MAC
// over its name, age recipient and status key under the one-time secret in
// tokenFile (init-host's, from the user-data), and the function that
// deletes that file once the host sees itself enrolled. No file (not
// given, or deleted after enrolment) publishes nothing.
func Enrolment(tokenFile, host, recipient, statusKey string, log *slog.Logger) (mac string, done func()) {
	if tokenFile == "" {
		return "", nil
	}
	secret, err := ReadToken(tokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		log.Warn("the enrolment token cannot be read; the host publishes no enrolment MAC, so `syncd enroll --token` will refuse it", "err", err)
		return "", nil
	}
	return EnrolmentMAC(secret, host, recipient, statusKey), func() {
		if err := os.Remove(tokenFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("enrolled, but the enrolment token cannot be deleted; delete it", "file", tokenFile, "err", err)
			return
		}
		log.Info("enrolled: deleted the one-time enrolment token", "file", tokenFile)
	}
}
