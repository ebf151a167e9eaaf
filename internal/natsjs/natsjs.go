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
// consumer; the packages that use a connection read them.
package natsjs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

	mu       sync.Mutex
	embedded map[string]*server.Server
	tokens   map[string]string // by directory, of embedded
	conns    []*nats.Conn
}

// urlFile, in an embedded server's directory, holds the URL other processes
// join it at while it runs.
const urlFile = "server.url"

// tokenFile, next to urlFile, holds the token the embedded server requires
// of every client, in process or not. Both files and the directory are the
// owner's only (0600, 0700): another local user can neither join the
// server nor read its streams from disk.
const tokenFile = "server.token"

// Conn is a connection and the URL's query parameters.
type Conn struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	Params url.Values
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
		// Another segpub process on this machine may run the embedded
		// server for this directory already: join it.
		if running, token, err := readJoinFiles(dir); err == nil {
			if nc, err = nats.Connect(running, nats.Name("segpub"), nats.Token(token), nats.MaxReconnects(-1)); err == nil {
				break
			}
		}
		srv, token, err := c.server(dir)
		if err != nil {
			return nil, err
		}
		nc, err = nats.Connect("", nats.InProcessServer(srv), nats.Name("segpub"), nats.Token(token))
		if err != nil {
			return nil, fmt.Errorf("connect to embedded JetStream: %w", err)
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
	return &Conn{NC: nc, JS: js, Params: u.Query()}, nil
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
// or half written.
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

func (c *Connector) server(dir string) (*server.Server, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.embedded == nil {
		c.embedded = map[string]*server.Server{}
		c.tokens = map[string]string{}
	}
	if s, ok := c.embedded[dir]; ok {
		return s, c.tokens[dir], nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create JetStream directory: %w", err)
	}
	// A directory made by an older version may be open to everyone.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("restrict JetStream directory %s to its owner: %w", dir, err)
	}
	// A fresh token each start: a token read while an earlier server
	// ran is worthless afterwards.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, "", fmt.Errorf("generate embedded JetStream token: %w", err)
	}
	token := hex.EncodeToString(secret)
	if err := writePrivate(filepath.Join(dir, tokenFile), []byte(token)); err != nil {
		return nil, "", fmt.Errorf("record embedded JetStream token: %w", err)
	}
	abs, _ := filepath.Abs(dir)
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
		return nil, "", fmt.Errorf("start embedded JetStream: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, "", fmt.Errorf("embedded JetStream in %s did not start", abs)
	}
	if err := writePrivate(filepath.Join(dir, urlFile), []byte(s.ClientURL())); err != nil {
		s.Shutdown()
		return nil, "", fmt.Errorf("record embedded JetStream URL: %w", err)
	}
	if c.Logger != nil {
		c.Logger.Info("embedded JetStream started", "dir", abs, "url", s.ClientURL())
	}
	c.embedded[dir] = s
	c.tokens[dir] = token
	return s, token, nil
}

// Close drains connections and stops embedded servers.
func (c *Connector) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nc := range c.conns {
		_ = nc.Drain()
	}
	c.conns = nil
	for dir, s := range c.embedded {
		_ = os.Remove(filepath.Join(dir, urlFile))
		_ = os.Remove(filepath.Join(dir, tokenFile))
		s.Shutdown()
		s.WaitForShutdown()
		delete(c.embedded, dir)
		delete(c.tokens, dir)
	}
}

// Param returns a query parameter or a default.
func (c *Conn) Param(name, def string) string {
	if v := c.Params.Get(name); v != "" {
		return v
	}
	return def
}
