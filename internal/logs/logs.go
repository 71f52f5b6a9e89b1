// Package logs is syncd's slog plumbing that is no component's own: the
// component a log line comes from.
package logs

import (
	"context"
	"log/slog"
)

// Key is the attribute that names the component a line comes from.
const Key = "component"

// Components makes every line carry one component: a logger narrowed
// twice, log.With("component", "jobs").With("component", "restic"), logs
// component=jobs/restic, the path from the outermost to the innermost, not
// the key twice. The component comes after the logger's other With
// attributes, first of the record's own; one given inside a group
// (WithGroup) is the group's.
func Components(next slog.Handler) slog.Handler { return &handler{next: next} }

type handler struct {
	next      slog.Handler
	component string // held back, joined, and added to each record
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	component := h.component
	var rest []slog.Attr
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == Key {
			component = join(component, a.Value.Resolve().String())
		} else {
			rest = append(rest, a)
		}
		return true
	})
	if component == "" {
		return h.next.Handle(ctx, rec)
	}
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	out.AddAttrs(slog.String(Key, component))
	out.AddAttrs(rest...)
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	component := h.component
	rest := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		if a.Key == Key {
			component = join(component, a.Value.Resolve().String())
			continue
		}
		rest = append(rest, a)
	}
	next := h.next
	if len(rest) > 0 {
		next = next.WithAttrs(rest)
	}
	return &handler{next: next, component: component}
}

// WithGroup puts the component held so far before the group: what follows
// is the group's, a component key in it too.
func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	next := h.next
	if h.component != "" {
		next = next.WithAttrs([]slog.Attr{slog.String(Key, h.component)})
	}
	return next.WithGroup(name)
}

func join(outer, inner string) string {
	switch {
	case outer == "":
		return inner
	case inner == "":
		return outer
	}
	return outer + "/" + inner
}
