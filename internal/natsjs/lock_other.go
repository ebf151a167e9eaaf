//go:build !unix

package natsjs

// dirLock is not available here: without flock, this platform relies on
// server.url alone to find a running server.
type dirLock struct{}

func tryLock(string) (*dirLock, error) { return &dirLock{}, nil }

func (*dirLock) release() {}
