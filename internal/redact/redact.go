// Package redact hides the passwords of URLs in text segpub logs or shows:
// a job's CSV or output URL, a connection error quoting its database URL.
// It is the one place that decides what a hidden password looks like.
package redact

import (
	"context"
	"log/slog"
	"regexp"
)

// Mask replaces a password.
const Mask = "***"

// userinfo matches the user information of a URL with a password: the
// scheme and user name kept, the password up to the last @ before the
// host (a password may itself hold @ or /).
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s"'<>]*):[^\s"'<>]*@`)

// Text returns s with the password of every URL in it replaced by Mask.
func Text(s string) string {
	if !hasScheme(s) {
		return s
	}
	return userinfo.ReplaceAllString(s, "${1}:"+Mask+"@")
}

// hasScheme is a cheap test that s may hold a URL with user information.
func hasScheme(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == ':' && s[i+1] == '/' && s[i+2] == '/' {
			return true
		}
	}
	return false
}

// Handler returns a slog handler that redacts the message and every string
// or error attribute before next sees them, so a URL logged anywhere (an
// error that quotes it, a job field) never carries its password.
func Handler(next slog.Handler) slog.Handler { return &handler{next: next} }

type handler struct{ next slog.Handler }

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = attr(a)
	}
	return &handler{next: h.next.WithAttrs(red)}
}

func (h *handler) WithGroup(name string) slog.Handler { return &handler{next: h.next.WithGroup(name)} }

func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Text(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = attr(x)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, Text(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, Text(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
