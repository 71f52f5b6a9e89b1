package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/syncd-dev/syncd/internal/redact"
)

// Shoutrrr is the Sender of production: one shoutrrr service per send.
type Shoutrrr struct{}

// Send delivers one message to url. The error never holds url. shoutrrr
// takes no context: a send that outlives ctx is abandoned (its goroutine
// ends when the HTTP request does).
func (Shoutrrr) Send(ctx context.Context, url, title, message string) error {
	// No logger: shoutrrr logs the service URL, token and all.
	r, err := router.New(nil, url)
	if err != nil {
		return errors.New(scrub(err.Error(), url))
	}
	r.Timeout = router.DefaultTimeout
	if d, ok := ctx.Deadline(); ok {
		r.Timeout = max(time.Until(d), time.Millisecond)
	}
	params := types.Params{"title": title}
	done := make(chan error, 1)
	go func() { done <- errors.Join(r.Send(message, &params)...) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("send to %s: %s", redact.Host(url), scrub(err.Error(), url))
	}
	return nil
}
