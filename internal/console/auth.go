package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
)

// sessionCookie holds a signed-in browser's session: a random id and its
// signature under the token. The token itself never leaves the server
// after sign-in, and is never rendered.
const sessionCookie = "segpub_console_session"

// csrfField is the form field of every action form: a value derived from
// the session, which a page on another site cannot read.
const csrfField = "csrf"

func (c *Console) sign(purpose, id string) string {
	m := hmac.New(sha256.New, []byte(c.cfg.Token))
	m.Write([]byte(purpose + ":" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// session returns the request's session id when its cookie is signed with
// the current token.
func (c *Console) session(r *http.Request) (string, bool) {
	if c.cfg.Token == "" {
		return "", false
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false
	}
	id, sig, ok := strings.Cut(ck.Value, ".")
	if !ok || id == "" || !hmac.Equal([]byte(sig), []byte(c.sign("session", id))) {
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
		return false, "refused: this action needs the console token; sign in first"
	}
	if !hmac.Equal([]byte(r.PostFormValue(csrfField)), []byte(c.sign("csrf", id))) {
		return false, "refused: the form's CSRF token is missing or stale; reload the page"
	}
	return true, ""
}

// action wraps a state-changing handler with the token and CSRF checks.
func (c *Console) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if ok, why := c.authorized(r); !ok {
			c.log.Warn("console: action refused", "path", r.URL.Path, "why", why)
			c.refuse(w, r, http.StatusForbidden, why)
			return
		}
		h(w, r)
	}
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if c.cfg.Token == "" {
		c.refuse(w, r, http.StatusForbidden, "actions are disabled: no console token is set (SEGPUB_CONSOLE_TOKEN)")
		return
	}
	if !c.tokenMatches(r.PostFormValue("token")) {
		c.log.Warn("console: sign-in refused", "remote", r.RemoteAddr)
		c.refuse(w, r, http.StatusForbidden, "refused: wrong console token")
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id + "." + c.sign("session", id), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, back(r), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, back(r), http.StatusSeeOther)
}

// back is the console page a form came from (its "back" field), or the
// runs page: never another site.
func back(r *http.Request) string {
	p := r.PostFormValue("back")
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return "/runs"
	}
	return p
}
