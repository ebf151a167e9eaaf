package console

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segpub/segpub/internal/redact"
)

// pageNames are the templates/*.html pages, each rendered inside layout.html.
var pageNames = []string{"runs", "run", "campaigns", "deadletters", "deadletter", "preview", "refused"}

var funcs = template.FuncMap{
	"num":    formatInt,
	"redact": redactURLs,
	// path escapes an id for a URL's path: "/" "?" "#" and "%" in a
	// request_id or campaign id stay part of it.
	"path": url.PathEscape,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ptime": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"local": func(t time.Time) string { return t.Format("2006-01-02 15:04 MST (Mon)") },
	"dur":   formatDuration,
	"pct": func(part, whole int64) string {
		if whole <= 0 {
			return "—"
		}
		return strconv.FormatFloat(100*float64(part)/float64(whole), 'f', 1, 64) + "%"
	},
	"rate": func(r float64) string {
		if r <= 0 || math.IsNaN(r) {
			return "—"
		}
		return formatInt(int64(math.Round(r))) + "/s"
	},
}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// page is what every page template gets.
type page struct {
	Title string
	// Nav is the menu entry to highlight.
	Nav string
	// Live is the URL the page's live region is refreshed from; "" when
	// the page does not refresh.
	Live string
	// Actions: a console token is set. SignedIn: this browser has a
	// session. CSRF is its forms' value.
	Actions, SignedIn bool
	CSRF              string
	// Personal: the request may see people's data (a token is set and
	// it is signed in).
	Personal bool
	// Here is the page's own path and query, where forms come back to.
	Here      string
	Databases []Database
	Flash     string
	Error     string
	Data      any
}

// ActionsWhy says why the page's action buttons are disabled; "" when
// this browser may use them. The server refuses the actions all the same.
func (p *page) ActionsWhy() string {
	switch {
	case p.SignedIn:
		return ""
	case p.Actions:
		return "actions need the console token: sign in"
	}
	return "actions are disabled: no console token is set (SEGPUB_CONSOLE_TOKEN)"
}

func (c *Console) newPage(r *http.Request, title, nav string) *page {
	csrf := c.csrfToken(r)
	return &page{Title: title, Nav: nav, Actions: c.cfg.Token != "", SignedIn: csrf != "", CSRF: csrf, Personal: c.signedIn(r),
		Here: r.URL.RequestURI(), Databases: c.cfg.Databases, Flash: c.flash(r)}
}

// doneURL is path with the message an action's result page shows, signed:
// a link elsewhere cannot make a console page say what it likes.
func (c *Console) doneURL(path, msg string) string {
	return path + "?" + url.Values{"done": {msg}, "ds": {c.flashSig(msg)}}.Encode()
}

func (c *Console) flashSig(msg string) string {
	m := hmac.New(sha256.New, c.flashKey[:])
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// flash is the request's signed done message, "" when it has none or it
// is not the console's.
func (c *Console) flash(r *http.Request) string {
	q := r.URL.Query()
	msg := q.Get("done")
	if msg == "" || !hmac.Equal([]byte(q.Get("ds")), []byte(c.flashSig(msg))) {
		return ""
	}
	return msg
}

// render executes a page: the whole page, or only its live region when
// the page's script asks for it.
func (c *Console) render(w http.ResponseWriter, r *http.Request, name string, status int, p *page) {
	tpl := "layout"
	if r.Header.Get("X-Console-Live") == "1" && p.Live != "" {
		tpl = "live"
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, tpl, p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(escapeBidi(buf.Bytes()))
}

// isBidi reports the characters that reorder text around them: an id
// holding one would show as another id.
func isBidi(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x200E || r == 0x200F || r == 0x061C
}

// escapeBidi shows every bidirectional control character of a rendered
// page as its JSON escape (\u202E): the templates hold none, so each
// comes from data, and shown raw it would reorder what follows it. In a
// pasted job (the preview's form) the escape is the same character again.
func escapeBidi(b []byte) []byte {
	if !bytes.ContainsFunc(b, isBidi) {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if isBidi(r) {
			out = fmt.Appendf(out, "\\u%04X", r)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}

// refuse renders a refusal or an error as a page of its own.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	p := c.newPage(r, http.StatusText(status), "")
	p.Error = msg
	p.Here = "/runs"
	c.render(w, r, "refused", status, p)
}

// fail reports an error reading the databases.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("console: page", "path", r.URL.Path, "err", err)
	c.refuse(w, r, http.StatusInternalServerError, err.Error())
}

// redactURLs hides passwords of URLs in text shown from errors and dead
// letters (a connection error may quote the URL it failed on).
func redactURLs(s string) string { return redact.Text(s) }

func formatInt(v int64) string {
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
