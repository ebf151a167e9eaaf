package console

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// pageNames are the templates/*.html pages, each rendered inside layout.html.
var pageNames = []string{"runs", "run", "campaigns", "deadletters", "preview", "refused"}

var funcs = template.FuncMap{
	"num":    formatInt,
	"redact": redactURLs,
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
	return &page{Title: title, Nav: nav, Actions: c.cfg.Token != "", SignedIn: csrf != "", CSRF: csrf,
		Here: r.URL.RequestURI(), Databases: c.cfg.Databases, Flash: r.URL.Query().Get("done")}
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
	_, _ = w.Write(buf.Bytes())
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

// userinfo matches the password of a URL's user information.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@\s]*@`)

// redactURLs hides passwords of URLs in text shown from errors and dead
// letters (a connection error may quote the URL it failed on).
func redactURLs(s string) string { return userinfo.ReplaceAllString(s, "$1:***@") }

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
