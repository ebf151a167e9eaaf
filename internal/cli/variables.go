package cli

import (
	"regexp"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envInHelp is how a setting's help names its variable (envHelp).
var envInHelp = regexp.MustCompile(` \(\$(SEGPUB_[A-Z0-9_]+)\)$`)

// Variables lists, sorted, every SEGPUB_ variable some command reads. A
// setting's help names its variable (decls), hidden flags' included, so the
// list comes from the command tree itself: the documentation and the
// deployment template are checked against it.
func Variables() []string {
	root := New(&Env{Getenv: func(string) string { return "" }}).Command()
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if m := envInHelp.FindStringSubmatch(f.Usage); m != nil && !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		})
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	slices.Sort(out)
	return out
}
