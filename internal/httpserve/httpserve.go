// Package httpserve builds segpub's HTTP servers (the console, /metrics)
// with bounds on every phase of a request, so a client that sends or reads
// a byte a second, or keeps an idle connection open, holds nothing for
// long.
package httpserve

import (
	"net/http"
	"time"
)

// Bounds of every server this package builds.
const (
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout = 30 * time.Second
	// IdleTimeout closes a keep-alive connection with no request.
	IdleTimeout = 30 * time.Second
	// MaxHeaderBytes bounds a request's header block.
	MaxHeaderBytes = 64 << 10
	// DefaultWriteTimeout bounds writing a response when the server's
	// handlers do not say otherwise.
	DefaultWriteTimeout = 30 * time.Second
)

// Server returns a server of h whose responses must be written within
// write (0: DefaultWriteTimeout); a handler that works longer (the
// console's preview runs the audience query) passes its own bound plus a
// margin. No segpub server streams a response.
func Server(h http.Handler, write time.Duration) *http.Server {
	if write <= 0 {
		write = DefaultWriteTimeout
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout, WriteTimeout: write,
		IdleTimeout: IdleTimeout, MaxHeaderBytes: MaxHeaderBytes}
}
