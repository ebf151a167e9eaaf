package cli

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/cli.md")

const (
	cliDoc        = "../../docs/cli.md"
	generatedFrom = "<!-- generated from the command tree: go test ./internal/cli -run TestCLIReference -update -->"
	generatedTo   = "<!-- end of generated part -->"
)

// cliReference is the reference of every command and every flag shown in
// its help, from the command tree itself.
func cliReference() string {
	root := New(&Env{Getenv: func(string) string { return "" }}).Command()
	var b strings.Builder
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if c != root {
			fmt.Fprintf(&b, "### `%s`\n\n", c.CommandPath())
			fmt.Fprintf(&b, "%s.\n\n", strings.TrimSuffix(c.Short, "."))
			if c.Long != "" {
				fmt.Fprintf(&b, "```\n%s\n```\n\n", strings.TrimSpace(c.Long))
			}
			if c.Runnable() && (len(c.Commands()) == 0 || c.HasAvailableLocalFlags()) {
				fmt.Fprintf(&b, "Usage: `%s`\n\n", c.UseLine())
			}
			var subs []string
			for _, s := range c.Commands() {
				if !s.Hidden && s.Name() != "help" {
					subs = append(subs, "`"+s.Name()+"`")
				}
			}
			if len(subs) > 0 {
				fmt.Fprintf(&b, "Subcommands: %s.\n\n", strings.Join(subs, ", "))
			}
			var rows []string
			c.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if f.Hidden || f.Name == "help" {
					return
				}
				name := "`--" + f.Name + "`"
				if f.Shorthand != "" {
					name = "`-" + f.Shorthand + "`, " + name
				}
				help, env := f.Usage, ""
				if m := envInHelp.FindStringSubmatch(help); m != nil {
					help, env = strings.TrimSuffix(help, m[0]), "`"+m[1]+"`"
				}
				def := ""
				if !slices.Contains([]string{"", "0", "false", "[]", "0s"}, f.DefValue) {
					def = "`" + f.DefValue + "`"
				}
				rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", name, env, def, strings.ReplaceAll(help, "|", `\|`)))
			})
			if len(rows) > 0 {
				b.WriteString("| flag | variable | default | what |\n|---|---|---|---|\n")
				b.WriteString(strings.Join(rows, "\n"))
				b.WriteString("\n\n")
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return strings.TrimSpace(b.String())
}

// docs/cli.md documents every command and flag of the binary, as the
// binary defines them: the reference is generated from the command tree,
// and this test fails when the two differ.
func TestCLIReference(t *testing.T) {
	data, err := os.ReadFile(cliDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	from, to := strings.Index(doc, generatedFrom), strings.Index(doc, generatedTo)
	if from < 0 || to < from {
		t.Fatalf("%s: the generated part's markers are missing", cliDoc)
	}
	want := doc[:from] + generatedFrom + "\n\n" + cliReference() + "\n\n" + doc[to:]
	if *update {
		if err := os.WriteFile(cliDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if doc != want {
		t.Errorf("%s is not the command tree's reference; run: go test ./internal/cli -run TestCLIReference -update", cliDoc)
	}
}
