package cli

import (
	"os"
	"regexp"
	"slices"
	"testing"
)

var configRow = regexp.MustCompile("(?m)^\\| `(SEGPUB_[A-Z0-9_]+)`")

// docs/configuration.md's table lists exactly the variables the binary
// reads: a setting added without its documentation, or documentation of a
// setting that is gone, fails here.
func TestConfigurationDocListsEverySetting(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range configRow.FindAllStringSubmatch(string(data), -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(documented)
	if d := slices.Compact(slices.Clone(documented)); len(d) != len(documented) {
		t.Errorf("docs/configuration.md lists a variable twice: %v", documented)
	}
	read := Variables()
	if len(read) < 20 {
		t.Fatalf("the binary reads only %d variables: %v", len(read), read)
	}
	for _, v := range read {
		if !slices.Contains(documented, v) {
			t.Errorf("%s is read by the binary but not documented in docs/configuration.md", v)
		}
	}
	for _, v := range documented {
		if !slices.Contains(read, v) {
			t.Errorf("%s is documented in docs/configuration.md but no command reads it", v)
		}
	}
}
