package natsjs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// The embedded server refuses clients without its token; its URL and token
// files and its directory are the owner's only; a segpub process that
// reads them joins.
func TestEmbeddedRequiresToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "jetstream")
	// A directory left open by an older version is closed on start.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Connector{DefaultDir: dir}
	defer c.Close()
	conn, err := c.Connect(ctx, "embedded:")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.JS.AccountInfo(ctx); err != nil {
		t.Fatalf("in-process client: %v", err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, urlFile): 0o600, filepath.Join(dir, tokenFile): 0o600} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
	url, err := os.ReadFile(filepath.Join(dir, urlFile))
	if err != nil {
		t.Fatal(err)
	}
	// Any local process can reach the port; without the token it is
	// refused.
	for name, opts := range map[string][]nats.Option{
		"no credential": nil,
		"wrong token":   {nats.Token("guess")},
		"user":          {nats.UserInfo("segpub", "segpub")},
	} {
		nc, err := nats.Connect(string(url), opts...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v, want an authorization error", name, err)
		}
	}
	// Another segpub process joins with the files.
	other := &Connector{DefaultDir: dir}
	defer other.Close()
	joined, err := other.Connect(ctx, "embedded:")
	if err != nil {
		t.Fatal(err)
	}
	if joined.NC.ConnectedUrl() != string(url) {
		t.Fatalf("second connector did not join: connected to %q", joined.NC.ConnectedUrl())
	}
	if _, err := joined.JS.AccountInfo(ctx); err != nil {
		t.Fatalf("joined client: %v", err)
	}
}
