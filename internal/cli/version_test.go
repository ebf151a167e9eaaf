package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stampFlag is the -X the Dockerfile and the Makefile pass.
const stampFlag = "github.com/segpub/segpub/internal/cli.version"

// A binary linked with the stamp reports it: the Dockerfile's VERSION build
// argument reaches segpub version, although the image's build context has
// no .git for Go to read.
func TestVersionStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("links a binary")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "segpub")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X "+stampFlag+"=v9.8.7-test -X github.com/segpub/segpub/internal/cli.revision=abc123", "github.com/segpub/segpub/cmd/segpub")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatalf("segpub version: %v", err)
	}
	var info buildInfo
	if err := json.Unmarshal(out, &info); err != nil || info.Version != "v9.8.7-test" {
		t.Fatalf("segpub version --json: %s (%v); want version v9.8.7-test", out, err)
	}
	if info.Revision == "" {
		t.Errorf("segpub version --json: %s; want a revision", out)
	}
}

// The Dockerfile and make build stamp that variable, from VERSION.
func TestVersionStampedByBuilds(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"../../Dockerfile", "../../Makefile"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "-X "+stampFlag+"=$") {
			t.Errorf("%s does not stamp %s", f, stampFlag)
		}
	}
}
