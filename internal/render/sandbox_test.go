package render

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// sentinel is a file a template must never read: its content is a random
// token, so any output or error that holds the token came from the file.
type sentinel struct {
	path, token string
	environ     []string // entries of this process's /proc/self/environ
}

func newSentinel(t testing.TB, dir string) *sentinel {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	s := &sentinel{path: filepath.Join(dir, "secret.txt"), token: "S3NT1N3L" + hex.EncodeToString(b)}
	if err := os.WriteFile(s.path, []byte(s.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// What an include of /proc/self/environ would echo; short entries
	// are too likely to occur by chance.
	if env, err := os.ReadFile("/proc/self/environ"); err == nil {
		for _, e := range strings.Split(string(env), "\x00") {
			if len(e) >= 12 {
				s.environ = append(s.environ, e)
			}
		}
	}
	return s
}

// expand puts the sentinel's path (absolute, and relative to the working
// directory through a run of ..) in place of the placeholders.
func (s *sentinel) expand(src string) string {
	rel := strings.Repeat("../", 12) + strings.TrimPrefix(s.path, "/")
	return strings.NewReplacer("@SENTINEL@", s.path, "@RELSENTINEL@", rel).Replace(src)
}

// leak reports the first file content found in text.
func (s *sentinel) leak(text string) string {
	if strings.Contains(text, s.token) {
		return "the sentinel file"
	}
	for _, e := range s.environ {
		if strings.Contains(text, e) {
			return "/proc/self/environ"
		}
	}
	return ""
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }

// hostileTemplates are attacks on the renderer, each with a part of the
// rejection it must get.
var hostileTemplates = []struct{ name, src, want string }{
	{"environ through include and a filter", `{% capture f %}{% include "../../../../../../../../proc/self/environ" %}{% endcapture %}{{ f | date_add: "1 day" }}`, `tag "include" is not allowed`},
	{"environ included directly", `{% include "/proc/self/environ" %}`, `tag "include" is not allowed`},
	{"sentinel by absolute path", `{% include "@SENTINEL@" %}`, `tag "include"`},
	{"sentinel by relative path", `{% include "@RELSENTINEL@" %}`, `tag "include"`},
	{"sentinel through capture and contains", `{% capture f %}{% include "@SENTINEL@" %}{% endcapture %}{% if f contains "S3NT" %}yes{% endif %}`, `tag "include"`},
	{"include with trim markers", `{%- include "@SENTINEL@" -%}`, `tag "include"`},
	{"include of an expanded name", `{% assign p = "@SENTINEL@" %}{% include {{ p }} %}`, `tag "include"`},
	{"include in a branch never taken", `{% if false %}{% include "@SENTINEL@" %}{% endif %}`, `tag "include"`},
	{"include in a loop", `{% for i in (1..3) %}{% include "@SENTINEL@" %}{% endfor %}`, `tag "include"`},
	{"render", `{% render "@SENTINEL@" %}`, `tag "render" is not allowed`},
	{"render with arguments", `{% render "x", a: 1 %}`, `tag "render"`},
	{"dev zero", `{% include "/dev/zero" %}`, `tag "include"`},
	{"dev urandom", `{% capture x %}{% include "/dev/urandom" %}{% endcapture %}{{ x | size }}`, `tag "include"`},
	{"liquid tag", `{% liquid include "x" %}`, `tag "liquid" is not allowed`},
	{"echo tag", `{% echo "x" %}`, `tag "echo" is not allowed`},
	{"cycle", `{% for i in (1..3) %}{% cycle "a", "b" %}{% endfor %}`, `tag "cycle" is not allowed`},
	{"tablerow", `{% tablerow i in (1..1000000000) %}{{ i }}{% endtablerow %}`, `tag "tablerow" is not allowed`},
	{"nested for bomb", `{% for i in (1..1000000000) %}{% for j in (1..1000000000) %}{% endfor %}{% endfor %}`, `MaxLoopIterations`},
	{"empty for bomb", `{% for i in (1..1000000000) %}{% endfor %}`, `MaxLoopIterations`},
	{"nested small loops", `{% for i in (1..100) %}{% for j in (1..100) %}{% endfor %}{% endfor %}`, `MaxLoopIterations`},
	{"for over a reversed huge range", `{% for i in (1..1000000000) reversed offset: 1 %}x{% endfor %}`, `MaxLoopIterations`},
	{"for over split", `{% assign a = "` + repeat("x,", 600) + `" | split: "," %}{% for x in a %}{% for y in a %}{% endfor %}{% endfor %}`, `MaxLoopIterations`},
	{"append doubling", `{% assign a = "xxxxxxxx" %}` + repeat(`{% assign a = a | append: a %}`, 40) + `{{ a | size }}`, `MaxOutputBytes`},
	{"append doubling in a loop", `{% assign a = "x" %}{% for i in (1..64) %}{% assign a = a | append: a %}{% endfor %}{{ a }}`, `MaxOutputBytes`},
	{"prepend doubling", `{% assign a = "xxxxxxxx" %}` + repeat(`{% assign a = a | prepend: a %}`, 40), `MaxOutputBytes`},
	{"capture doubling", `{% assign a = "xxxxxxxx" %}{% for i in (1..64) %}{% capture a %}{{ a }}{{ a }}{% endcapture %}{% endfor %}`, `MaxOutputBytes`},
	{"replace blow-up", `{% assign a = "` + repeat("a", 1000) + `" %}{{ a | replace: "a", a }}`, `MaxOutputBytes`},
	{"join blow-up", `{% assign a = "` + repeat("a", 500) + `" %}{{ a | split: "" | join: a }}`, `MaxOutputBytes`},
	{"split into many items", `{{ "` + repeat("x", 2000) + `" | split: "" | size }}`, `MaxItems`},
	{"output of a loop", `{% for i in (1..1000) %}` + repeat("x", 100) + `{% endfor %}`, `MaxOutputBytes`},
	{"work of a loop", `{% assign a = "xxxxxxxx" %}` + repeat(`{% assign a = a | append: a %}`, 10) + `{% for i in (1..1000) %}{% assign b = a | append: "" %}{% endfor %}`, `MaxWorkBytes`},
	{"deep nesting", repeat(`{% if true %}`, 100) + "x" + repeat(`{% endif %}`, 100), `MaxNesting`},
	{"deep loop nesting", repeat(`{% for i in (1..2) %}`, 20) + "x" + repeat(`{% endfor %}`, 20), `MaxNesting`},
	{"huge literal", `{{ "` + repeat("x", MaxSourceBytes) + `" }}`, `MaxSourceBytes`},
	{"huge date format", `{{ "now" | date: "` + repeat("%c", 1100) + `" }}`, `MaxOutputBytes`},
	{"range outside a loop", `{% assign r = (1..1000000000) %}{{ r | join: "," }}`, `range`},
	{"range printed", `{{ (1..1000000000) }}`, `range`},
	{"array filter", `{{ "a,b" | split: "," | sort | first }}`, `filter "sort" is not allowed`},
	{"inspect", `{{ "x" | inspect }}`, `filter "inspect" is not allowed`},
	{"url_decode", `{{ "%41" | url_decode }}`, `filter "url_decode" is not allowed`},
	{"unknown filter in a dead branch", `{% if false %}{{ "x" | read_file }}{% endif %}`, `filter "read_file" is not allowed`},
	{"local time zone", `{{ "now" | date: "%Y", "Local" }}`, `unknown time zone`},
	{"time zone path", `{{ "now" | date: "%Y", "../../../../@SENTINEL@" }}`, `unknown time zone`},
	{"absolute time zone path", `{{ "now" | date: "%Y", "@SENTINEL@" }}`, `unknown time zone`},
	{"date of a file", `{{ "@SENTINEL@" | date: "%Y" }}`, `not a date`},
	{"break outside a loop", `{% break %}`, `break outside a loop`},
	// The engine panics on these; a panic must be an error, not a crash.
	{"integer out of range in a loop", `{% for i in (1..99999999999999999999) %}x{% endfor %}`, `out of range`},
	{"integer out of range in an object", `{{ 99999999999999999999 }}`, `out of range`},
	{"slice out of range", `{{ "x" | slice: 9223372036854775807, 9223372036854775807 }}`, `out of range`},
}

// Each attack is a rejection that holds no file content, and renders in
// bounded work. The test measures the process's allocations, so it does
// not run in parallel with the package's other tests.
func TestHostileTemplates(t *testing.T) {
	s := newSentinel(t, t.TempDir())
	r := New(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	for _, c := range hostileTemplates {
		src := s.expand(c.src)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		out, err := r.Render(src)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: rendered %q, want a rejection containing %q", c.name, clip(out, 80), c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, clip(err.Error(), 300), c.want)
		}
		if out != "" {
			t.Errorf("%s: error with output %q", c.name, clip(out, 80))
		}
		if l := s.leak(err.Error()); l != "" {
			t.Errorf("%s: the error echoes %s: %s", c.name, l, clip(err.Error(), 300))
		}
		if len(err.Error()) > 2000 {
			t.Errorf("%s: an error of %d bytes", c.name, len(err.Error()))
		}
		// Bounded work: well under what the attack would allocate
		// unbounded (gigabytes), and well over a legitimate render.
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
			t.Errorf("%s: allocated %d MiB", c.name, n>>20)
		}
	}
}

// Within the limits templates keep Liquid's control flow.
func TestSandboxedLiquid(t *testing.T) {
	t.Parallel()
	r := New(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	cases := map[string]string{
		`{% for i in (1..10) %}{% if i == 3 %}{% continue %}{% endif %}{% if i == 6 %}{% break %}{% endif %}{{ i }}{% endfor %}`: "1245",
		`{% for i in (1..10) reversed offset: 2 limit: 3 %}{{ i }}{{ forloop.index }}{% endfor %}`:                               "817263",
		`{% for i in (1..1000000000) limit: 3 %}{{ i }}{% endfor %}`:                                                             "123",
		`{% for i in (1..0) %}x{% else %}none{% endfor %}`:                                                                       "none",
		`{% for x in "a,b" | split: "," %}{{ x }}{% endfor %}`:                                                                   "ab",
		`{% assign xs = "a,b" | split: "," %}{% for x in xs %}{{ x }}{% unless forloop.last %}+{% endunless %}{% endfor %}`:      "a+b",
		`{% case 2 %}{% when 1 %}one{% when 2, 3 %}two{% else %}other{% endcase %}`:                                              "two",
		`{% case 9 %}{% when 1 %}one{% else %}other{% endcase %}`:                                                                "other",
		`{% if false %}a{% elsif true %}b{% else %}c{% endif %}`:                                                                 "b",
		`{% capture d %}{{ "now" | date: "%Y" }}{% endcapture %}{{ d | append: "-01-01" }}`:                                      "2026-01-01",
		`{{ "a-b-c" | replace: "-", "/" | upcase | prepend: "x" }}`:                                                              "xA/B/C",
		`{{ "a,b,c" | split: "," | join: ";" }}`:                                                                                 "a;b;c",
		`{{ " x " | strip | size }}`:                                                                                             "1",
		`{% raw %}{% include "x" %}{% endraw %}`:                                                                                 `{% include "x" %}`,
		`{% comment %}{% include "x" %}{% endcomment %}ok`:                                                                       "ok",
		`{{ "now" | date_add: "-1 day" | date: "%Y-%m-%d", "Asia/Seoul" }}`:                                                      "2026-11-23",
		`{{ "a|b" }}`:  "a|b",
		`{{ "1..2" }}`: "1..2",
	}
	for src, want := range cases {
		got, err := r.Render(src)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", src, got, err, want)
		}
	}
}

// FuzzTemplate: no render reads a file (the sentinel's token and the
// process environment never appear in an output or an error), an error
// comes without output, and an output stays within MaxOutputBytes.
// @SENTINEL@ and @RELSENTINEL@ in an input stand for the sentinel's path.
func FuzzTemplate(f *testing.F) {
	f.Add(`{{ "now" | date_add: "-1 day" | date: "%Y-%m-%d", "Asia/Seoul" }}`)
	f.Add(`{% if 1 %}{{ "x" | upcase }}{% endif %}`)
	f.Add(`{% for i in (1..5) %}{{ i | plus: 1 }}{% endfor %}`)
	f.Add(`{% assign a = "ab" %}{% for i in (1..20) %}{% assign a = a | append: a %}{% endfor %}{{ a }}`)
	f.Add(`{% capture c %}{% for i in (1..100) %}{{ i }}{% endfor %}{% endcapture %}{{ c | replace: "1", c }}`)
	f.Add(`{{ "a,b,c" | split: "," | join: "@SENTINEL@" }}`)
	for _, c := range hostileTemplates {
		f.Add(c.src)
	}
	s := newSentinel(f, f.TempDir())
	r := New(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	f.Fuzz(func(t *testing.T, src string) {
		src = s.expand(src)
		out, err := r.Render(src)
		// A leak is file content in a result that the input itself did
		// not hold (the token is random, so an input cannot guess it).
		if err != nil {
			if out != "" {
				t.Fatalf("error with output %q", clip(out, 80))
			}
			if l := s.leak(err.Error()); l != "" && s.leak(src) == "" {
				t.Fatalf("the error echoes %s: %s", l, clip(err.Error(), 300))
			}
			return
		}
		if len(out) > MaxOutputBytes {
			t.Fatalf("output of %d bytes", len(out))
		}
		if l := s.leak(out); l != "" && s.leak(src) == "" {
			t.Fatalf("the output holds %s: %q", l, clip(out, 300))
		}
	})
}
