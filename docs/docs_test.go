// Package docs holds segpub's documentation; its test keeps the
// documentation inside the repository.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// outside matches pointers to documents the repository does not hold.
var outside = regexp.MustCompile(`(?i)\.\./shared/|CONTRACT\.md|seed report`)

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// The README, the docs and the code point at nothing outside the
// repository, and every relative link of the README and the docs leads to
// a file that exists.
func TestNothingPointsOutside(t *testing.T) {
	t.Parallel()
	var files []string
	for _, root := range []string{"../README.md", ".", "../internal", "../cmd", "../deploy", "../examples"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".md") || strings.HasSuffix(path, ".go") ||
				strings.HasSuffix(path, ".json") || strings.HasSuffix(path, ".yaml")) && path != "docs_test.go" {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 100 {
		t.Fatalf("only %d files", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s:%d: %q points outside the repository", f, i+1, m)
			}
		}
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.HasPrefix(target, "#") {
				continue
			}
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				t.Errorf("%s: link %s leaves the repository", f, target)
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s: link %s leads nowhere", f, m[1])
			}
		}
	}
}
