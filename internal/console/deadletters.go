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
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/worker"
)

// deadLettersShown is how many dead letters the page lists, newest first.
const deadLettersShown = 200

type deadLetter struct {
	ID        int64
	RequestID string
	Kind      string
	Reason    string
	Attempts  int
	FailedAt  time.Time
	// Replayable: the dead letter holds a job (not an unreadable or
	// oversized body).
	Replayable      bool
	ReplayedAt      *time.Time
	ReplayRequestID string
	// RunStatus and Published are the original run's, from the ledger
	// ("" when it has no row): what a replay would send again.
	RunStatus string
	Published int64
}

func (c *Console) deadLettersPage(w http.ResponseWriter, r *http.Request) {
	rows, err := c.cfg.State.Query(r.Context(), `SELECT d.id, d.request_id, d.kind, d.reason, d.attempts, d.failed_at, coalesce(d.body ? 'job', false),
  d.replayed_at, coalesce(d.replay_request_id, ''), coalesce(r.status, ''), coalesce(r.published, 0)
FROM segpub_dead_letters d LEFT JOIN segpub_runs r ON r.request_id = d.request_id AND d.request_id <> ''
ORDER BY d.failed_at DESC, d.id DESC LIMIT $1`, deadLettersShown)
	if err != nil {
		c.fail(w, r, fmt.Errorf("list dead letters: %w", err))
		return
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (deadLetter, error) {
		var d deadLetter
		err := row.Scan(&d.ID, &d.RequestID, &d.Kind, &d.Reason, &d.Attempts, &d.FailedAt, &d.Replayable, &d.ReplayedAt, &d.ReplayRequestID,
			&d.RunStatus, &d.Published)
		return d, err
	})
	if err != nil {
		c.fail(w, r, fmt.Errorf("list dead letters: %w", err))
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
	err = c.cfg.State.QueryRow(r.Context(), `SELECT id, request_id, kind, reason, attempts, failed_at, replayed_at, coalesce(replay_request_id, ''),
  body::text, raw FROM segpub_dead_letters WHERE id = $1`, id).Scan(&v.ID, &v.RequestID, &v.Kind, &v.Reason, &v.Attempts, &v.FailedAt,
		&v.ReplayedAt, &v.ReplayRequestID, &body, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		c.refuse(w, r, http.StatusNotFound, "no such dead letter")
		return
	}
	if err != nil {
		c.fail(w, r, fmt.Errorf("dead letter %d: %w", id, err))
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
	tx, err := c.cfg.State.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var body []byte
	var replayed *string
	// Locked: two operators pressing replay at once send it once.
	err = tx.QueryRow(ctx, `SELECT coalesce(convert_to(body::text, 'UTF8'), raw), replay_request_id FROM segpub_dead_letters WHERE id = $1 FOR UPDATE`,
		id).Scan(&body, &replayed)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: no dead letter %d", errReplay, id)
	}
	if err != nil {
		return "", fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	if replayed != nil {
		return "", fmt.Errorf("%w: dead letter %d was replayed already, as %s", errReplay, id, *replayed)
	}
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
	if _, err := tx.Exec(ctx, `UPDATE segpub_dead_letters SET replayed_at = now(), replay_request_id = $2 WHERE id = $1`, id, newID); err != nil {
		return "", fmt.Errorf("record replay of dead letter %d: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("record replay of dead letter %d: %w", id, err)
	}
	return newID, nil
}
