package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/osteele/liquid/expressions"
	"github.com/osteele/liquid/filters"
	"github.com/osteele/liquid/parser"
	"github.com/osteele/liquid/render"
	"github.com/osteele/liquid/values"
)

// The sandbox's limits (docs/decisions.md, "Condition templates: a sandbox
// with bounded work"). A template that goes past one is a rejection. The Liquid
// engine cannot be cancelled, so the limits are structural: every loop
// iteration and every string a template builds is counted while it
// renders, in the renderer's own goroutine, and the deadline is checked at
// the same points. No render runs on after its error.
const (
	// MaxSourceBytes bounds a template's source. A D-day template is
	// under 100 bytes.
	MaxSourceBytes = 4096
	// MaxNesting bounds how deeply blocks ({% if %}, {% for %}, ...) nest.
	MaxNesting = 8
	// MaxOutputBytes bounds every string a template builds: its output, a
	// captured block, an assigned value, a filter's result.
	MaxOutputBytes = 16 << 10
	// MaxItems bounds the length of an array a filter returns (split).
	MaxItems = 1000
	// MaxLoopIterations bounds the iterations of all {% for %} loops of
	// one render together, nested loops included.
	MaxLoopIterations = 1000
	// MaxWorkBytes bounds the bytes all filters, captures and the output
	// of one render produce together, so loops of filters stay cheap.
	MaxWorkBytes = 1 << 20
	// Timeout is the render deadline, a backstop for the limits above.
	Timeout = time.Second
)

// allowedTags are the tags and blocks a template may use. include (a file
// read), cycle and tablerow (loop decorations of no use in a value) and
// any tag the engine does not know are rejected by name.
var allowedTags = map[string]bool{
	"assign": true, "capture": true, "if": true, "elsif": true, "else": true, "unless": true,
	"case": true, "when": true, "for": true, "break": true, "continue": true, "comment": true, "raw": true,
}

// standardFilters are the Liquid standard filters a template may use:
// none reads anything but its arguments, and each result is measured
// (guard); at most append and prepend double their input before that.
// replace and join, whose result can be far larger than their arguments,
// are the sandbox's own, which refuse before building a string that is too
// long.
var standardFilters = []string{
	"default", "size", "first", "last",
	"abs", "ceil", "floor", "modulo", "minus", "plus", "times", "divided_by", "round",
	"append", "prepend", "capitalize", "downcase", "upcase", "strip", "lstrip", "rstrip", "strip_newlines",
	"remove", "remove_first", "replace_first", "slice", "split",
}

// Render renders src with no variables: a template sees nothing but the
// reference time (through "now" and "today"). Errors never carry anything
// but the template's own text and the reason.
func (r *Renderer) Render(src string) (out string, err error) {
	if len(src) > MaxSourceBytes {
		return "", &LimitError{What: fmt.Sprintf("a template of %d bytes", len(src)), Limit: "MaxSourceBytes"}
	}
	b := &budget{deadline: time.Now().Add(Timeout)}
	defer func() {
		// The engine reports most errors, but panics on an integer literal
		// out of range, on a failed write and on some values a filter did
		// not expect. A panic must not end the worker: it is the
		// template's error like any other.
		if p := recover(); p != nil {
			out = ""
			if b.err != nil {
				err = b.err
				return
			}
			err = fmt.Errorf("template: %s", clip(panicText(p), 300))
		}
	}()
	cfg := r.config(b)
	ast, perr := cfg.Parse(src, parser.SourceLoc{})
	if perr != nil {
		return "", fmt.Errorf("template: %s", clip(perr.Error(), 300))
	}
	if err := check(ast, 0); err != nil {
		return "", err
	}
	root, cerr := cfg.Compile(src, parser.SourceLoc{})
	if cerr != nil {
		return "", fmt.Errorf("template: %s", clip(cerr.Error(), 300))
	}
	w := &capped{b: b}
	rerr := render.Render(root, w, map[string]any{}, cfg)
	if b.err != nil {
		return "", b.err
	}
	if rerr != nil {
		return "", fmt.Errorf("template: %s", clip(rerr.Error(), 300))
	}
	return w.buf.String(), nil
}

// panicText is a recovered panic's message without the stack trace the
// engine attaches to errors it rethrows.
func panicText(p any) string {
	if e, ok := p.(interface{ Cause() error }); ok && e.Cause() != nil {
		return e.Cause().Error()
	}
	if e, ok := p.(error); ok {
		return e.Error()
	}
	return fmt.Sprint(p)
}

// config is a fresh engine configuration whose tags and filters count
// their work in b. It is built per render: the budget is per render, and
// building it costs microseconds.
func (r *Renderer) config(b *budget) render.Config {
	cfg := render.NewConfig()
	// The allowed tags only: the engine's standard set includes include,
	// which reads files, and loops without a bound. A tag that is not
	// registered does not compile.
	cfg.AddTag("assign", assignTag)
	cfg.AddBlock("if").Clause("else").Clause("elsif").Compiler(ifCompiler(true))
	cfg.AddBlock("unless").Clause("else").Compiler(ifCompiler(false))
	cfg.AddBlock("case").Clause("when").Clause("else").Compiler(caseCompiler)
	// The parser skips what is between comment or raw and their end tags.
	cfg.AddBlock("comment")
	cfg.AddBlock("raw")
	cfg.AddBlock("for").Clause("else").Compiler(b.loopCompiler)
	cfg.AddTag("break", func(string) (func(io.Writer, render.Context) error, error) {
		return func(_ io.Writer, ctx render.Context) error { return ctx.WrapError(errBreak) }, nil
	})
	cfg.AddTag("continue", func(string) (func(io.Writer, render.Context) error, error) {
		return func(_ io.Writer, ctx render.Context) error { return ctx.WrapError(errContinue) }, nil
	})
	cfg.AddBlock("capture").Compiler(b.captureCompiler)

	std := collector{}
	filters.AddStandardFilters(std)
	for _, name := range standardFilters {
		cfg.AddFilter(name, b.guard(std[name]))
	}
	cfg.AddFilter("replace", b.guard(b.replace))
	cfg.AddFilter("join", b.guard(b.join))
	cfg.AddFilter("date", b.guard(r.date))
	cfg.AddFilter("date_add", b.guard(r.dateAdd))
	return cfg
}

// allowedFilters names every filter the sandbox registers.
var allowedFilters = func() map[string]bool {
	m := map[string]bool{"replace": true, "join": true, "date": true, "date_add": true}
	for _, f := range standardFilters {
		m[f] = true
	}
	return m
}()

func notAllowed(kind, name string) error {
	allowed := allowedFilters
	if kind == "tag" {
		allowed = allowedTags
	}
	names := make([]string, 0, len(allowed))
	for n := range allowed {
		names = append(names, n)
	}
	sort.Strings(names)
	why := ""
	if name == "include" || name == "render" {
		why = "a template sees nothing but the reference time and loads no other template or file; "
	}
	return fmt.Errorf("%s %q is not allowed in a condition template (%sallowed %ss: %s)", kind, clip(name, 40), why, kind, strings.Join(names, ", "))
}

// collector captures the standard filters by name.
type collector map[string]any

func (c collector) AddFilter(name string, fn any) { c[name] = fn }

// check walks the parsed template before it renders: tags and filters off
// the allowlist are rejected by name even in a branch that would not run,
// blocks nest at most MaxNesting deep, and a range ((a..b)) appears only
// as a loop's collection, where the loop bounds it.
func check(n parser.ASTNode, depth int) error {
	switch n := n.(type) {
	case *parser.ASTSeq:
		for _, c := range n.Children {
			if err := check(c, depth); err != nil {
				return err
			}
		}
	case *parser.ASTBlock:
		if depth >= MaxNesting {
			return &LimitError{What: fmt.Sprintf("blocks nested %d deep", depth+1), Limit: "MaxNesting"}
		}
		if err := checkTag(n.Token); err != nil {
			return err
		}
		for _, c := range n.Body {
			if err := check(c, depth+1); err != nil {
				return err
			}
		}
		for _, c := range n.Clauses {
			if err := checkTag(c.Token); err != nil {
				return err
			}
			for _, cc := range c.Body {
				if err := check(cc, depth+1); err != nil {
					return err
				}
			}
		}
	case *parser.ASTTag:
		return checkTag(n.Token)
	case *parser.ASTObject:
		return checkExpr(n.Args, false)
	}
	return nil
}

func checkTag(t parser.Token) error {
	if !allowedTags[t.Name] {
		return notAllowed("tag", t.Name)
	}
	switch t.Name {
	case "raw", "comment":
		return nil
	}
	return checkExpr(t.Args, t.Name == "for")
}

// checkExpr scans an expression's text outside its string literals
// (Liquid strings have no escapes) for filters and ranges.
func checkExpr(src string, rangeOK bool) error {
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '"', '\'':
			end := strings.IndexByte(src[i+1:], c)
			if end < 0 {
				return nil // the engine rejects the unterminated string
			}
			i += end + 1
		case '.':
			if i+1 < len(src) && src[i+1] == '.' && !rangeOK {
				return fmt.Errorf("a range (a..b) is only allowed as a {%% for %%} loop's collection")
			}
		case '|':
			j := i + 1
			for j < len(src) && (src[j] == ' ' || src[j] == '\t' || src[j] == '\n' || src[j] == '\r') {
				j++
			}
			k := j
			for k < len(src) && (src[k] == '_' || src[k] == '-' || src[k] == '?' ||
				'a' <= src[k] && src[k] <= 'z' || 'A' <= src[k] && src[k] <= 'Z' || '0' <= src[k] && src[k] <= '9') {
				k++
			}
			// No name is a syntax error, which the engine reports.
			if name := src[j:k]; name != "" && !allowedFilters[name] {
				return notAllowed("filter", name)
			}
		}
	}
	return nil
}

// budget is one render's account of its work. The first limit crossed is
// kept: every later step fails with it, so a render stops at its next step.
type budget struct {
	deadline   time.Time
	work       int
	iterations int
	err        error
}

// spend counts n bytes of work and checks the deadline.
func (b *budget) spend(n int) error {
	if b.err != nil {
		return b.err
	}
	b.work += n
	switch {
	case b.work > MaxWorkBytes:
		b.err = &LimitError{What: "the work of this template", Limit: "MaxWorkBytes"}
	case time.Now().After(b.deadline):
		b.err = &LimitError{What: "the rendering time of this template", Limit: "Timeout"}
	}
	return b.err
}

func (b *budget) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return b.err
}

// capped is a writer that holds at most MaxOutputBytes.
type capped struct {
	b   *budget
	buf bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > MaxOutputBytes {
		return 0, c.b.fail(&LimitError{What: "a rendered string", Limit: "MaxOutputBytes"})
	}
	if err := c.b.spend(len(p)); err != nil {
		return 0, err
	}
	return c.buf.Write(p)
}

var errorType = reflect.TypeOf((*error)(nil)).Elem()

// guard wraps a filter: before it runs the budget is checked, after it
// runs its result is measured and counted. The wrapper has the filter's
// parameters (the engine converts arguments by them) and returns an error
// besides the filter's result.
func (b *budget) guard(fn any) any {
	fv := reflect.ValueOf(fn)
	ft := fv.Type()
	ins := make([]reflect.Type, ft.NumIn())
	for i := range ins {
		ins[i] = ft.In(i)
	}
	out := ft.Out(0)
	wt := reflect.FuncOf(ins, []reflect.Type{out, errorType}, ft.IsVariadic())
	return reflect.MakeFunc(wt, func(args []reflect.Value) []reflect.Value {
		failed := func(err error) []reflect.Value {
			return []reflect.Value{reflect.Zero(out), reflect.ValueOf(&err).Elem()}
		}
		if err := b.spend(1); err != nil {
			return failed(err)
		}
		var res []reflect.Value
		if ft.IsVariadic() {
			res = fv.CallSlice(args)
		} else {
			res = fv.Call(args)
		}
		if len(res) == 2 && !res[1].IsNil() {
			return res
		}
		if err := b.measure(res[0].Interface()); err != nil {
			return failed(err)
		}
		return []reflect.Value{res[0], reflect.Zero(errorType)}
	}).Interface()
}

// measure counts a filter's result and checks its size.
func (b *budget) measure(v any) error {
	n := 0
	switch v := v.(type) {
	case string:
		n = len(v)
	case []byte:
		n = len(v)
	default:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
			if rv.Len() > MaxItems {
				return b.fail(&LimitError{What: fmt.Sprintf("an array of %d items", rv.Len()), Limit: "MaxItems"})
			}
			n = rv.Len()
		}
	}
	if n > MaxOutputBytes {
		return b.fail(&LimitError{What: fmt.Sprintf("a filter's result of %d bytes", n), Limit: "MaxOutputBytes"})
	}
	return b.spend(n)
}

// tooLong is the error of a filter that would build a string of n bytes.
func (b *budget) tooLong(filter string, n int) error {
	return b.fail(&LimitError{What: fmt.Sprintf("the result of %s (%d bytes)", filter, n), Limit: "MaxOutputBytes"})
}

// replace is Liquid's replace, refusing before it builds a result longer
// than MaxOutputBytes.
func (b *budget) replace(s, old, repl string) (string, error) {
	n := strings.Count(s, old)
	if size := len(s) + n*(len(repl)-len(old)); n > 0 && (len(repl) > MaxOutputBytes || size > MaxOutputBytes) {
		return "", b.tooLong("replace", max(size, len(repl)))
	}
	return strings.ReplaceAll(s, old, repl), nil
}

// join is Liquid's join, refusing before it builds a result longer than
// MaxOutputBytes.
func (b *budget) join(a []any, sep func(string) string) (string, error) {
	s := sep(" ")
	parts := make([]string, 0, len(a))
	size := 0
	for _, v := range a {
		if v == nil {
			continue
		}
		p := fmt.Sprint(v)
		if len(parts) > 0 {
			size += len(s)
		}
		size += len(p)
		if size > MaxOutputBytes {
			return "", b.tooLong("join", size)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, s), nil
}

var (
	errBreak    = errors.New("break outside a loop")
	errContinue = errors.New("continue outside a loop")
)

// iterable is what a loop runs over; values.Range is one.
type iterable interface {
	Len() int
	Index(int) any
}

// loopCompiler is Liquid's {% for %} (with else, reversed, offset: and
// limit:) counting its iterations: a loop that would take the render past
// MaxLoopIterations is refused before its first iteration.
func (b *budget) loopCompiler(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
	stmt, err := expressions.ParseStatement(expressions.LoopStatementSelector, node.Args)
	if err != nil {
		return nil, err
	}
	loop := stmt.Loop
	var elseClause *render.BlockNode
	for _, c := range node.Clauses {
		if c.Name != "else" || elseClause != nil {
			return nil, errors.New("a for loop accepts at most one else clause")
		}
		elseClause = c
	}
	return func(w io.Writer, ctx render.Context) error {
		val, err := ctx.Evaluate(loop.Expr)
		if err != nil {
			return err
		}
		items := toIterable(val)
		length := 0
		if items != nil {
			length = max(items.Len(), 0)
		}
		offset, limit := 0, -1
		if loop.Offset != nil {
			if offset, err = intArg(ctx, loop.Offset, "offset"); err != nil {
				return err
			}
		}
		if loop.Limit != nil {
			if limit, err = intArg(ctx, loop.Limit, "limit"); err != nil {
				return err
			}
		}
		count := length - max(offset, 0)
		if limit >= 0 {
			count = min(count, limit)
		}
		count = max(count, 0)
		if count == 0 {
			if elseClause != nil {
				return ctx.RenderBlock(w, elseClause)
			}
			return nil
		}
		if b.iterations+count > MaxLoopIterations {
			return b.fail(&LimitError{What: fmt.Sprintf("a loop of %d iterations (after %d)", count, b.iterations), Limit: "MaxLoopIterations"})
		}
		b.iterations += count
		defer func(forloop, variable any) {
			ctx.Set("forloop", forloop)
			ctx.Set(loop.Variable, variable)
		}(ctx.Get("forloop"), ctx.Get(loop.Variable))
		for i := range count {
			if err := b.spend(1); err != nil {
				return err
			}
			k := i + max(offset, 0)
			if loop.Reversed {
				k = length - 1 - k
			}
			ctx.Set(loop.Variable, items.Index(k))
			ctx.Set("forloop", map[string]any{
				"first": i == 0, "last": i == count-1, "index": i + 1, "index0": i,
				"rindex": count - i, "rindex0": count - i - 1, "length": count,
			})
			if err := ctx.RenderChildren(w); err != nil {
				switch err.Cause() {
				case errBreak:
					return nil
				case errContinue:
					continue
				}
				return err
			}
		}
		return nil
	}, nil
}

func intArg(ctx render.Context, e expressions.Expression, name string) (int, error) {
	v, err := ctx.Evaluate(e)
	if err != nil {
		return 0, err
	}
	n, ok := v.(int)
	if !ok {
		return 0, ctx.Errorf("loop %s must be an integer", name)
	}
	return n, nil
}

// toIterable is the collection of a loop: a range or an array (a map's
// keys, sorted); anything else runs no iteration.
func toIterable(v any) iterable {
	if it, ok := v.(iterable); ok {
		return it
	}
	if v == nil {
		return nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		return sliceIter{rv}
	case reflect.Map:
		keys := make([]string, 0, rv.Len())
		for _, k := range rv.MapKeys() {
			keys = append(keys, fmt.Sprint(k.Interface()))
		}
		sort.Strings(keys)
		return sliceIter{reflect.ValueOf(keys)}
	}
	return nil
}

type sliceIter struct{ v reflect.Value }

func (s sliceIter) Len() int        { return s.v.Len() }
func (s sliceIter) Index(i int) any { return s.v.Index(i).Interface() }

// captureCompiler is Liquid's {% capture %} rendering into a capped
// buffer, so a captured block is bounded like the output.
func (b *budget) captureCompiler(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
	name := strings.TrimSpace(node.Args)
	return func(_ io.Writer, ctx render.Context) error {
		buf := &capped{b: b}
		if err := ctx.RenderChildren(buf); err != nil {
			return err
		}
		ctx.Set(name, buf.buf.String())
		return nil
	}, nil
}

// assignTag is Liquid's {% assign name = expression %}.
func assignTag(args string) (func(io.Writer, render.Context) error, error) {
	stmt, err := expressions.ParseStatement(expressions.AssignStatementSelector, args)
	if err != nil {
		return nil, err
	}
	return func(_ io.Writer, ctx render.Context) error {
		v, err := ctx.Evaluate(stmt.Assignment.ValueFn)
		if err != nil {
			return err
		}
		ctx.Set(stmt.Assignment.Variable, v)
		return nil
	}, nil
}

// ifCompiler is Liquid's {% if %} (polarity true; with elsif and else)
// and {% unless %} (false; with else).
func ifCompiler(polarity bool) render.BlockCompiler {
	return func(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
		type branch struct {
			test expressions.Expression
			body *render.BlockNode
		}
		test, err := expressions.Parse(node.Args)
		if err != nil {
			return nil, err
		}
		if !polarity {
			test = expressions.Not(test)
		}
		branches := []branch{{test, &node}}
		for _, c := range node.Clauses {
			t := expressions.Constant(true)
			if c.Name == "elsif" {
				if t, err = expressions.Parse(c.Args); err != nil {
					return nil, err
				}
			}
			branches = append(branches, branch{t, c})
		}
		return func(w io.Writer, ctx render.Context) error {
			for _, br := range branches {
				v, err := ctx.Evaluate(br.test)
				if err != nil {
					return err
				}
				if v != nil && v != false {
					return ctx.RenderBlock(w, br.body)
				}
			}
			return nil
		}, nil
	}
}

// caseCompiler is Liquid's {% case %} with when and else.
func caseCompiler(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
	sel, err := expressions.Parse(node.Args)
	if err != nil {
		return nil, err
	}
	type clause struct {
		when []expressions.Expression // nil: else
		body *render.BlockNode
	}
	var clauses []clause
	for _, c := range node.Clauses {
		cl := clause{body: c}
		if c.Name == "when" {
			stmt, err := expressions.ParseStatement(expressions.WhenStatementSelector, c.Args)
			if err != nil {
				return nil, err
			}
			cl.when = stmt.When.Exprs
		}
		clauses = append(clauses, cl)
	}
	return func(w io.Writer, ctx render.Context) error {
		v, err := ctx.Evaluate(sel)
		if err != nil {
			return err
		}
		for _, cl := range clauses {
			match := cl.when == nil
			for _, e := range cl.when {
				wv, err := ctx.Evaluate(e)
				if err != nil {
					return err
				}
				if values.Equal(v, wv) {
					match = true
					break
				}
			}
			if match {
				return ctx.RenderBlock(w, cl.body)
			}
		}
		return nil
	}, nil
}
