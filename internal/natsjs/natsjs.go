// Package natsjs connects to NATS JetStream: a standalone server
// (nats://host:port) or one embedded in this process (embedded:), so a
// laptop runs segpub with nothing else installed.
//
// URL grammar (documented in docs/configuration.md):
//
//	embedded:                      embedded server, data under the default directory
//	embedded:///var/lib/segpub/js  embedded server, data in that directory
//	nats://h1:4222,h2:4222         standalone servers
//
// Either form takes query parameters naming the stream, subject and
// consumer, and the stream limits max_bytes and max_age; the packages that
// use a connection read them.
//
// One process serves an embedded data directory: it holds an exclusive
// lock (flock) on the directory's server.lock while its server runs, and
// every other segpub process of the machine (submit, status, a second
// serve) that finds the lock held joins that server at the URL in
// server.url, waiting for it while the server starts. Two servers never
// share a directory, so a job submitted while serve starts is never stored
// where no worker looks.
//
// The embedded server accepts only clients that present the token in the
// directory's server.token, made afresh at each start; it and server.url
// are readable by their owner only, and the directory is 0700, so other
// users of the machine can neither join the server nor read its streams.
package natsjs

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segpub/segpub/internal/flock"
)

// IsURL reports whether u is a JetStream URL.
func IsURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "nats" || p.Scheme == "tls" || p.Scheme == "embedded")
}

// Connector opens JetStream connections. It starts at most one embedded
// server per data directory and shares it between the job queue, the
// channel output and the dead letters of one process.
type Connector struct {
	// DefaultDir is where an embedded server keeps its data when the URL
	// names no directory.
	DefaultDir string
	Logger     *slog.Logger

	// JoinTimeout bounds how long Connect waits for the embedded server
	// another process is starting on the same directory. Default:
	// DefaultJoinTimeout.
	JoinTimeout time.Duration

	// start serializes starting or joining embedded servers.
	start    sync.Mutex
	mu       sync.Mutex
	embedded map[string]*embeddedServer
	conns    []*nats.Conn
}

type embeddedServer struct {
	srv   *server.Server
	token string
	lock  *flock.Lock
}

// DefaultJoinTimeout is how long Connect waits, by default, for an embedded
// server that another process is starting (recovering a large directory
// takes seconds).
const DefaultJoinTimeout = 2 * time.Minute

const (
	// urlFile, in an embedded server's directory, holds the URL other
	// processes join it at while it runs.
	urlFile = "server.url"
	// lockFile, in an embedded server's directory, is locked by the
	// process that serves the directory for as long as its server runs.
	lockFile = "server.lock"
	// tokenFile, next to urlFile, holds the token the embedded server
	// requires of every client.
	tokenFile = "server.token"
)

// Conn is a connection and the URL's query parameters.
type Conn struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	Params url.Values
	// Embedded is set for embedded: URLs, whose streams get the embedded
	// default's limits (see Limits).
	Embedded bool
}

// Connect connects to the server a URL names.
func (c *Connector) Connect(ctx context.Context, rawURL string) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse JetStream URL: %w", err)
	}
	var nc *nats.Conn
	switch u.Scheme {
	case "embedded":
		dir := u.Path
		if dir == "" || dir == "/" {
			dir = c.DefaultDir
		}
		if nc, err = c.embeddedConn(ctx, dir); err != nil {
			return nil, err
		}
	case "nats", "tls":
		servers := u.Scheme + "://" + u.Host
		opts := []nats.Option{nats.Name("segpub"), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond)}
		if u.User != nil {
			pw, _ := u.User.Password()
			opts = append(opts, nats.UserInfo(u.User.Username(), pw))
		}
		nc, err = nats.Connect(servers, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", servers, err)
		}
	default:
		return nil, fmt.Errorf("JetStream URL %q: scheme must be nats, tls or embedded", rawURL)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	c.mu.Lock()
	c.conns = append(c.conns, nc)
	c.mu.Unlock()
	return &Conn{NC: nc, JS: js, Params: u.Query(), Embedded: u.Scheme == "embedded"}, nil
}

// embeddedConn connects to the embedded server of dir: this process's own,
// the one another process serves (holding the directory's lock), or a new
// one this process starts and serves.
func (c *Connector) embeddedConn(ctx context.Context, dir string) (*nats.Conn, error) {
	c.start.Lock()
	defer c.start.Unlock()
	c.mu.Lock()
	own, ok := c.embedded[dir]
	c.mu.Unlock()
	if ok {
		return inProcess(own)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create JetStream directory: %w", err)
	}
	if c.JoinTimeout < 0 {
		return nil, fmt.Errorf("natsjs: Connector.JoinTimeout %s is negative", c.JoinTimeout)
	}
	timeout := cmp.Or(c.JoinTimeout, DefaultJoinTimeout)
	deadline := time.Now().Add(timeout)
	waiting := false
	for {
		lock, err := flock.TryLock(filepath.Join(dir, lockFile))
		if err != nil {
			return nil, err
		}
		if lock != nil {
			// No process serves the directory: serve it. A server.url
			// left by one that died names nobody.
			_ = os.Remove(filepath.Join(dir, urlFile))
			e, err := c.serve(dir, lock)
			if err != nil {
				lock.Release()
				return nil, err
			}
			return inProcess(e)
		}
		// Another process serves the directory, or is starting to:
		// join it once its URL is there.
		if running, token, err := readJoinFiles(dir); err == nil && running != "" {
			if nc, err := nats.Connect(running, nats.Name("segpub"), nats.Token(token), nats.MaxReconnects(-1)); err == nil {
				c.logger().Info("joined the embedded JetStream another process serves", "dir", dir, "url", running)
				return nc, nil
			}
		}
		if !waiting {
			c.logger().Info("waiting for the embedded JetStream another process is starting", "dir", dir, "lock", filepath.Join(dir, lockFile))
			waiting = true
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("embedded JetStream in %s: another process holds %s but has published no server URL in %s", dir, lockFile, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the embedded JetStream in %s: %w", dir, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func inProcess(e *embeddedServer) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(e.srv), nats.Name("segpub"), nats.Token(e.token))
	if err != nil {
		return nil, fmt.Errorf("connect to embedded JetStream: %w", err)
	}
	return nc, nil
}

func (c *Connector) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// readJoinFiles reads the URL and token of a server another process runs.
func readJoinFiles(dir string) (url, token string, err error) {
	u, err := os.ReadFile(filepath.Join(dir, urlFile))
	if err != nil {
		return "", "", err
	}
	t, err := os.ReadFile(filepath.Join(dir, tokenFile))
	if err != nil {
		return "", "", err
	}
	return strings.TrimSpace(string(u)), strings.TrimSpace(string(t)), nil
}

// writePrivate replaces path with data, readable by the owner only. The
// file is written aside and renamed, so it never exists with other modes
// or half written (a joining process never reads half a URL).
func writePrivate(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// serve starts the embedded server of dir, whose lock this process holds.
func (c *Connector) serve(dir string, lock *flock.Lock) (*embeddedServer, error) {
	// A directory made by an older version may be open to everyone.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict JetStream directory %s to its owner: %w", dir, err)
	}
	// A fresh token each start: a token read while an earlier server ran
	// is worthless afterwards.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate embedded JetStream token: %w", err)
	}
	token := hex.EncodeToString(secret)
	if err := writePrivate(filepath.Join(dir, tokenFile), []byte(token)); err != nil {
		return nil, fmt.Errorf("record embedded JetStream token: %w", err)
	}
	abs, _ := filepath.Abs(dir)
	// Recovering a large directory takes seconds, during which nothing
	// else is logged: say what start-up is doing and how much it reads.
	stored := dirBytes(abs)
	c.logger().Info("starting embedded JetStream: recovering its stored streams", "dir", abs, "stored_bytes", stored)
	began := time.Now()
	s, err := server.NewServer(&server.Options{
		ServerName: "segpub-embedded",
		JetStream:  true,
		StoreDir:   abs,
		// Loopback only, on a free port, so other segpub processes of
		// this machine (submit, status, a second worker) can join it;
		// nothing is exposed beyond the machine.
		Host:   "127.0.0.1",
		Port:   server.RANDOM_PORT,
		NoSigs: true,
		NoLog:  true,
		// Loopback is not private: any local user could connect.
		Authorization: token,
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded JetStream: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded JetStream in %s did not start", abs)
	}
	if err := writePrivate(filepath.Join(dir, urlFile), []byte(s.ClientURL())); err != nil {
		s.Shutdown()
		return nil, fmt.Errorf("record embedded JetStream URL: %w", err)
	}
	c.logger().Info("embedded JetStream started", "dir", abs, "url", s.ClientURL(), "stored_bytes", stored,
		"startup_ms", time.Since(began).Milliseconds())
	c.mu.Lock()
	if c.embedded == nil {
		c.embedded = map[string]*embeddedServer{}
	}
	e := &embeddedServer{srv: s, token: token, lock: lock}
	c.embedded[dir] = e
	c.mu.Unlock()
	return e, nil
}

// dirBytes is the size of the files under dir (0 when unreadable).
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// Close drains connections and stops embedded servers.
func (c *Connector) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nc := range c.conns {
		_ = nc.Drain()
	}
	c.conns = nil
	for dir, e := range c.embedded {
		_ = os.Remove(filepath.Join(dir, urlFile))
		_ = os.Remove(filepath.Join(dir, tokenFile))
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		// Only now may another process serve the directory.
		e.lock.Release()
		delete(c.embedded, dir)
	}
}

// Stream limits of the embedded default, per stream: a laptop's embedded
// JetStream has no operator to trim it, and a demo stores about 430 MB of
// channel messages. Standalone servers get no limits unless their URL
// sets them.
const (
	DefaultEmbeddedMaxBytes int64 = 1 << 30
	DefaultEmbeddedMaxAge         = 7 * 24 * time.Hour
)

// Limits bound a stream's disk use; zero means unbounded.
type Limits struct {
	// MaxBytes bounds the bytes a stream stores.
	MaxBytes int64
	// MaxAge bounds how long a stream keeps a message.
	MaxAge time.Duration
}

// Limits returns the stream limits of the connection's URL: the query
// parameters max_bytes (bytes; 0: unbounded) and max_age (a duration like
// 72h; 0: unbounded), defaulting to DefaultEmbeddedMaxBytes and
// DefaultEmbeddedMaxAge on embedded: URLs and to none otherwise.
func (c *Conn) Limits() (Limits, error) {
	var l Limits
	if c.Embedded {
		l = Limits{MaxBytes: DefaultEmbeddedMaxBytes, MaxAge: DefaultEmbeddedMaxAge}
	}
	if raw := c.Params.Get("max_bytes"); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			return Limits{}, fmt.Errorf("JetStream URL parameter max_bytes: %q is not a number of bytes (0: unbounded)", raw)
		}
		l.MaxBytes = n
	}
	if raw := c.Params.Get("max_age"); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 {
			return Limits{}, fmt.Errorf("JetStream URL parameter max_age: %q is not a duration like 72h (0: unbounded)", raw)
		}
		l.MaxAge = d
	}
	return l, nil
}

// Param returns a query parameter or a default.
func (c *Conn) Param(name, def string) string {
	if v := c.Params.Get(name); v != "" {
		return v
	}
	return def
}
