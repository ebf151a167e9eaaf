package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/state"
	"github.com/segpub/segpub/internal/worker"
)

// deadLettersShown is how many dead letters the page lists, newest first.
const deadLettersShown = 200

type deadLetter = state.DeadLetter

func (c *Console) deadLettersPage(w http.ResponseWriter, r *http.Request) {
	list, err := c.records.DeadLetters(r.Context(), deadLettersShown)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	p := c.newPage(r, "Dead letters", "dead-letters")
	p.Data = struct {
		List      []deadLetter
		CanReplay bool
	}{list, c.cfg.Jobs != nil}
	c.render(w, r, "deadletters", http.StatusOK, p)
}

// deadLetterView is one dead letter with its body.
type deadLetterView struct {
	deadLetter
	// Body is the dead letter as recorded (the job in it), indented, or
	// its bytes escaped when it is not JSON PostgreSQL can hold; "" when
	// withheld.
	Body string
	// Locked: a token is set and this browser is not signed in;
	// Withheld: no token is set. Either way the body is not shown: it
	// holds the job, and a job may name people.
	Locked, Withheld bool
}

// deadLetterPage is GET /dead-letters/{id}: one dead letter and its body.
func (c *Console) deadLetterPage(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		c.refuse(w, r, http.StatusNotFound, "no such dead letter")
		return
	}
	var v deadLetterView
	var body, raw []byte
	v.deadLetter, body, raw, err = c.records.DeadLetter(r.Context(), id)
	if errors.Is(err, state.ErrNoDeadLetter) {
		c.refuse(w, r, http.StatusNotFound, "no such dead letter")
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	p := c.newPage(r, "Dead letter "+strconv.FormatInt(id, 10), "dead-letters")
	v.Withheld, v.Locked = c.cfg.Token == "", c.cfg.Token != "" && !p.Personal
	if !v.Withheld && !v.Locked {
		v.Body = showBody(body, raw)
	}
	p.Data = v
	c.render(w, r, "deadletter", http.StatusOK, p)
}

// showBody is a recorded body as text: JSON indented, or bytes PostgreSQL
// could not hold as JSON with what is not printable UTF-8 escaped.
func showBody(body, raw []byte) string {
	if body != nil {
		var out bytes.Buffer
		if json.Indent(&out, body, "", "  ") == nil {
			return out.String()
		}
		return string(body)
	}
	return escapeBytes(raw)
}

// escapeBytes shows b as text: printable UTF-8, newlines and tabs as
// they are, any other byte or control character as a Go escape.
func escapeBytes(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&s, `\x%02x`, b[0])
		case r == '\n' || r == '\t' || (unicode.IsPrint(r) && !isBidi(r)) || r == ' ':
			s.Write(b[:n])
		default:
			q := strconv.QuoteRune(r)
			s.WriteString(q[1 : len(q)-1])
		}
		b = b[n:]
	}
	return s.String()
}

// errReplay is a replay that cannot be done as the dead letter stands.
var errReplay = errors.New("cannot replay")

// replay is POST /dead-letters/{id}/replay: the dead letter's job goes to
// the job queue again under a new request_id (the original's run has
// failed or was rejected for good and would not run again), and the dead
// letter records it. A dead letter is replayed once.
func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Jobs == nil {
		c.refuse(w, r, http.StatusConflict, "replay needs the job queue, which this console has not opened")
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		c.refuse(w, r, http.StatusNotFound, "no such dead letter")
		return
	}
	newID, err := c.replayOne(r.Context(), id)
	if errors.Is(err, errReplay) {
		c.refuse(w, r, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.log.Info("console: dead letter replayed", "dead_letter", id, "request_id", newID)
	http.Redirect(w, r, c.doneURL("/dead-letters", "replayed as "+newID), http.StatusSeeOther)
}

// claimed returns the job a dead letter holds: the job itself, or, when
// it came as a claim check, the job the message store holds under it.
func (c *Console) claimed(ctx context.Context, store msgstore.Store, body []byte) ([]byte, error) {
	var env struct {
		MessageID string `json:"message_id"`
	}
	if json.Unmarshal(body, &env) != nil || env.MessageID == "" {
		return body, nil
	}
	if store == nil {
		return nil, fmt.Errorf("its job is a claim check (%s) and this console has no message store", env.MessageID)
	}
	full, err := store.Get(ctx, env.MessageID, c.cfg.MaxJobBytes)
	if err != nil {
		return nil, fmt.Errorf("its claim-checked job %s: %w", env.MessageID, err)
	}
	return full, nil
}

func (c *Console) replayOne(ctx context.Context, id int64) (string, error) {
	newID, err := c.records.Replay(ctx, id, func(ctx context.Context, body []byte) (string, error) { return c.resend(ctx, id, body) })
	if errors.Is(err, state.ErrNoDeadLetter) || errors.Is(err, state.ErrReplayed) {
		return "", fmt.Errorf("%w: %w", errReplay, err)
	}
	return newID, err
}

// resend sends the job of dead letter id (its body) to the job queue again
// under a new request_id, which it returns.
func (c *Console) resend(ctx context.Context, id int64, body []byte) (string, error) {
	var dl worker.DeadLetter
	if err := json.Unmarshal(body, &dl); err != nil || len(dl.Job) == 0 {
		return "", fmt.Errorf("%w: dead letter %d holds no job (an unreadable or oversized body)", errReplay, id)
	}
	q, store, err := c.jobs(ctx)
	if err != nil {
		return "", err
	}
	jobText, err := c.claimed(ctx, store, dl.Job)
	if err != nil {
		return "", fmt.Errorf("%w: dead letter %d: %v", errReplay, id, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(jobText, &fields); err != nil {
		return "", fmt.Errorf("%w: dead letter %d's job is not a JSON object", errReplay, id)
	}
	var orig string
	_ = json.Unmarshal(fields["request_id"], &orig)
	if orig == "" {
		orig = "dead-letter-" + strconv.FormatInt(id, 10)
	}
	newID := fmt.Sprintf("%s.replay-%d-%s", orig, id, c.cfg.Now().UTC().Format("20060102T150405"))
	fields["request_id"], _ = json.Marshal(newID)
	jobBody, _ := json.Marshal(fields)
	// A job the worker would reject again is refused here, with its path.
	if _, err := job.Parse(jobBody); err != nil {
		return "", fmt.Errorf("%w: the job would be rejected again: %v", errReplay, err)
	}
	if _, err := claimcheck.Send(ctx, q, store, jobBody, newID); err != nil {
		if errors.Is(err, claimcheck.ErrNoStore) {
			return "", fmt.Errorf("%w: %v", errReplay, err)
		}
		return "", fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	return newID, nil
}
