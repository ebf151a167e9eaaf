package cli

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// settingVariables is every SEGPUB_ variable some command of the binary
// reads: each setting's help names its variable (envHelp), hidden flags'
// included.
func settingVariables() []string {
	root := New(&Env{Getenv: func(string) string { return "" }}).Command()
	seen := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if m := envInHelp.FindStringSubmatch(f.Usage); m != nil {
				seen[m[1]] = true
			}
		})
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	var out []string
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

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
	read := settingVariables()
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
