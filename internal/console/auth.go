package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sessionCookie holds a signed-in browser's session: a random id and its
// signature under the token. The token itself never leaves the server
// after sign-in, and is never rendered.
const sessionCookie = "segpub_console_session"

// csrfField is the form field of every action form: a value derived from
// the session, which a page on another site cannot read.
const csrfField = "csrf"

// Sign-in limits: a client (its address) that sent signInFailures wrong
// tokens within signInWindow is refused until the window ends, whatever it
// sends; at most maxClients are tracked, and when the table is full every
// client shares one allowance.
const (
	signInFailures = 5
	signInWindow   = time.Minute
	maxClients     = 10_000
	// maxSessions bounds the signed-in browsers kept; the oldest is
	// dropped first.
	maxSessions = 10_000
)

func (c *Console) sign(purpose, id string) string {
	m := hmac.New(sha256.New, []byte(c.cfg.Token))
	m.Write([]byte(purpose + ":" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sessions are the signed-in browsers, kept in memory: signing out
// revokes one at once, each expires after the lifetime, and a restart
// signs everyone out.
type sessions struct {
	lifetime time.Duration
	now      func() time.Time
	mu       sync.Mutex
	until    map[string]time.Time
}

func newSessions(lifetime time.Duration, now func() time.Time) *sessions {
	return &sessions{lifetime: lifetime, now: now, until: map[string]time.Time{}}
}

func (s *sessions) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.until) >= maxSessions {
		oldest, at := "", time.Time{}
		for k, u := range s.until {
			if !u.After(now) {
				delete(s.until, k)
			} else if oldest == "" || u.Before(at) {
				oldest, at = k, u
			}
		}
		if len(s.until) >= maxSessions {
			delete(s.until, oldest)
		}
	}
	s.until[id] = now.Add(s.lifetime)
}

func (s *sessions) valid(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.until[id]
	if ok && !u.After(s.now()) {
		delete(s.until, id)
		return false
	}
	return ok
}

func (s *sessions) revoke(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.until, id)
}

// limiter counts failures per client within a window.
type limiter struct {
	max    int
	window time.Duration
	now    func() time.Time
	mu     sync.Mutex
	seen   map[string]*failures
}

type failures struct {
	n     int
	since time.Time
}

func newLimiter(max int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: window, now: now, seen: map[string]*failures{}}
}

// entry is the client's counter (nil when it has none and create is
// false): its own, or the shared one when the table is full.
func (l *limiter) entry(client string, create bool) *failures {
	now := l.now()
	f, ok := l.seen[client]
	if ok && now.Sub(f.since) >= l.window {
		delete(l.seen, client)
		f, ok = nil, false
	}
	if ok || !create {
		return f
	}
	if len(l.seen) >= maxClients {
		for k, v := range l.seen {
			if now.Sub(v.since) >= l.window {
				delete(l.seen, k)
			}
		}
		if len(l.seen) >= maxClients {
			client = "*"
			if f, ok := l.seen[client]; ok {
				return f
			}
		}
	}
	f = &failures{since: now}
	l.seen[client] = f
	return f
}

// blocked reports whether client has used up its failures, and for how
// long it stays blocked.
func (l *limiter) blocked(client string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.entry(client, false)
	if f == nil && len(l.seen) >= maxClients {
		f = l.seen["*"]
	}
	if f == nil || f.n < l.max {
		return false, 0
	}
	return true, f.since.Add(l.window).Sub(l.now())
}

func (l *limiter) fail(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entry(client, true).n++
}

// client is the address sign-in attempts are counted by: the connection's
// peer, or the address the trusted proxy says it forwarded for.
func (c *Console) client(r *http.Request) string {
	if c.cfg.TrustProxy {
		if fwd := r.Header.Get("X-Forwarded-For"); fwd != "" {
			// The proxy appends the peer it saw: the last entry.
			parts := strings.Split(fwd, ",")
			return strings.TrimSpace(parts[len(parts)-1])
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// secure reports whether the browser reached the console over TLS: the
// connection itself, or the trusted proxy's X-Forwarded-Proto.
func (c *Console) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return c.cfg.TrustProxy && strings.EqualFold(strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0]), "https")
}

// session returns the request's session id when its cookie is signed with
// the current token and the session is live (not signed out, not
// expired).
func (c *Console) session(r *http.Request) (string, bool) {
	if c.cfg.Token == "" {
		return "", false
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false
	}
	id, sig, ok := strings.Cut(ck.Value, ".")
	if !ok || id == "" || !hmac.Equal([]byte(sig), []byte(c.sign("session", id))) || !c.sessions.valid(id) {
		return "", false
	}
	return id, true
}

// csrfToken is the value the signed-in browser's forms carry; "" when
// not signed in.
func (c *Console) csrfToken(r *http.Request) string {
	id, ok := c.session(r)
	if !ok {
		return ""
	}
	return c.sign("csrf", id)
}

func (c *Console) tokenMatches(got string) bool {
	return c.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(c.cfg.Token)) == 1
}

// authorized reports whether an action may run: a bearer token (scripts,
// which carry no ambient cookie), or a signed-in session whose form carries
// its CSRF value. The message says why not.
func (c *Console) authorized(r *http.Request) (bool, string) {
	if c.cfg.Token == "" {
		return false, "actions are disabled: no console token is set (SEGPUB_CONSOLE_TOKEN)"
	}
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if c.tokenMatches(auth) {
			return true, ""
		}
		return false, "refused: wrong console token"
	}
	id, ok := c.session(r)
	if !ok {
		return false, "refused: this needs the console token; sign in first"
	}
	if !hmac.Equal([]byte(r.PostFormValue(csrfField)), []byte(c.sign("csrf", id))) {
		return false, "refused: the form's CSRF token is missing or stale; reload the page"
	}
	return true, ""
}

// signedIn reports whether the request may see people's data: a token is
// set, and the request carries it or a live session.
func (c *Console) signedIn(r *http.Request) bool {
	if c.cfg.Token == "" {
		return false
	}
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return c.tokenMatches(auth)
	}
	_, ok := c.session(r)
	return ok
}

// action wraps a state-changing handler with the token and CSRF checks.
func (c *Console) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ok, why := c.authorized(r); !ok {
			c.log.Warn("console: action refused", "path", r.URL.Path, "why", why)
			c.refuse(w, r, http.StatusForbidden, why)
			return
		}
		h(w, r)
	}
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Token == "" {
		c.refuse(w, r, http.StatusForbidden, "actions are disabled: no console token is set (SEGPUB_CONSOLE_TOKEN)")
		return
	}
	client := c.client(r)
	if blocked, left := c.signIns.blocked(client); blocked {
		c.log.Warn("console: sign-in refused: too many wrong tokens", "remote", client)
		w.Header().Set("Retry-After", strconv.Itoa(int(left.Seconds())+1))
		c.refuse(w, r, http.StatusTooManyRequests, "refused: too many wrong tokens; try again later")
		return
	}
	if !c.tokenMatches(r.PostFormValue("token")) {
		c.signIns.fail(client)
		c.log.Warn("console: sign-in refused", "remote", client)
		c.refuse(w, r, http.StatusForbidden, "refused: wrong console token")
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	c.sessions.add(id)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id + "." + c.sign("session", id), Path: "/",
		MaxAge: int(c.cfg.SessionLifetime.Seconds()), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(r)})
	http.Redirect(w, r, back(r), http.StatusSeeOther)
}

// logout ends the session on the server too: a copy of the cookie taken
// before signing out is worth nothing after.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if id, ok := c.session(r); ok {
		c.sessions.revoke(id)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.secure(r)})
	http.Redirect(w, r, back(r), http.StatusSeeOther)
}

// back is the console page a form came from (its "back" field), or the
// runs page: only a path on the console itself. Browsers drop tabs and
// newlines from URLs and read a backslash as a slash, so "/\t/evil" and
// "/\evil" would lead elsewhere: any control character or backslash, and
// anything that parses with a scheme or host, is refused.
func back(r *http.Request) string {
	p := r.PostFormValue("back")
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') {
		return "/runs"
	}
	for _, ch := range p {
		if ch < 0x20 || ch == 0x7f || isBidi(ch) {
			return "/runs"
		}
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/runs"
	}
	return p
}
