package filesink

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

// A file that cannot be opened is named once in the error, not twice
// ("open X: open X: is a directory").
func TestOpenErrorSaysItOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "email.ndjson")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New("file://" + dir + "/{channel}.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Publish(context.Background(), &publish.Batch{Channel: job.ChannelEmail, Data: []byte("{}\n"), Messages: make([]publish.Message, 1)})
	if err == nil || strings.Count(err.Error(), path) != 1 || strings.Count(err.Error(), "open ") != 1 {
		t.Fatalf("error %v", err)
	}
}
