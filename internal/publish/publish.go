// Package publish is segpub's engine: it turns one job into channel
// messages. A run flows through four stages, each in its own file:
//
//	source (source_db.go, source_csv.go) -> candidates in order
//	checks (checks.go)                   -> one skip reason or a destination
//	encode (package message)             -> channel messages in batches
//	sink   (the Sink interface)          -> the channel's destination
//
// The source, the checks and the sink run concurrently with bounded queues
// between them, so reading from PostgreSQL overlaps with publishing, and
// memory does not grow with the audience (only the de-duplication set does,
// by about 10 bytes a destination).
package publish

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/job"
)

// Sink receives a run's channel messages. Publish returns once the
// destination has accepted every message of the batch; the engine never
// reuses a batch before that.
type Sink interface {
	Publish(ctx context.Context, b *Batch) error
}

// Message is one encoded channel message.
type Message struct {
	// Key is the idempotency key (64 hex characters).
	Key []byte
	// Body is the message's JSON.
	Body []byte
}

// Batch is a run of consecutive channel messages.
type Batch struct {
	Channel job.Channel
	// Data holds every message's JSON followed by a newline, in order.
	Data     []byte
	Messages []Message
	// First is the index in the run's publishing order of the batch's
	// first message.
	First int64
	// After is the notifly_user_id of the last user whose candidates are
	// all in this batch or an earlier one; a resumed run starts after it.
	// Empty for CSV audiences, whose position is Rows.
	After string
	// Rows counts the CSV rows fully handled by this and earlier batches.
	Rows int64
}

// Config configures a Runner.
type Config struct {
	// Pool is the audience database. Required.
	Pool *pgxpool.Pool
	// Logger receives progress and diagnostics. Default: discard.
	Logger *slog.Logger
	// BatchSize is the number of messages handed to the sink at once.
	// Default: 1000.
	BatchSize int
	// Open opens a CSV audience URL. Default: OpenFile (local file:// URLs).
	Open func(ctx context.Context, url string) (io.ReadCloser, error)
	// MaxCSVBytes is the most a CSV audience may hold, whatever Open
	// reads it from (SEGPUB_CSV_MAX_BYTES). Default: DefaultMaxCSVBytes.
	MaxCSVBytes int64
	// Now is the clock for jobs without scheduled_at. Default: time.Now.
	Now func() time.Time
	// Progress, when set, is called after every sink batch.
	Progress func(Progress)
	// Trace, when set, is told the outcome of every candidate (operator
	// tools: segpub why). It runs on the engine's hot path: keep it cheap.
	Trace func(Outcome)
	// Failpoints lets tests fail a run at named points (internal/failpoint).
	// Nil in production.
	Failpoints *failpoint.Set
}

// Outcome is what happened to one candidate.
type Outcome struct {
	UserID, ExternalUserID, DeviceID string
	// Reason is a skip reason (the Skipped field's JSON name), or
	// "published".
	Reason    string
	VariantID string
	// Message is the channel message, for a published candidate of a
	// publish run; it is only valid during the call.
	Message []byte
}

// Progress is a running run's counts so far.
type Progress struct {
	Candidates int64
	Published  int64
}

func (c *Config) withDefaults() Config {
	out := *c
	out.Logger = cmp.Or(out.Logger, slog.New(slog.DiscardHandler))
	out.BatchSize = cmp.Or(out.BatchSize, 1000)
	if out.Open == nil {
		out.Open = OpenFile
	}
	out.MaxCSVBytes = cmp.Or(out.MaxCSVBytes, DefaultMaxCSVBytes)
	if out.Now == nil {
		out.Now = time.Now
	}
	return out
}

func (c *Config) validate() error {
	if c.Pool == nil {
		return errors.New("publish: Config.Pool is required")
	}
	if c.BatchSize < 0 || c.BatchSize > 100_000 {
		return fmt.Errorf("publish: Config.BatchSize %d out of range 1..100000", c.BatchSize)
	}
	if c.MaxCSVBytes < 0 {
		return fmt.Errorf("publish: Config.MaxCSVBytes %d is negative", c.MaxCSVBytes)
	}
	return nil
}

// Runner runs jobs.
type Runner struct {
	cfg Config
}

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg.withDefaults()}, nil
}

// Skipped counts candidates that were not published, by reason, in the
// contract's key order.
type Skipped struct {
	NoContact            int64 `json:"no_contact"`
	InvalidContact       int64 `json:"invalid_contact"`
	DuplicateDestination int64 `json:"duplicate_destination"`
	PreviouslyReceived   int64 `json:"previously_received"`
	ControlGroup         int64 `json:"control_group"`
	UnknownUser          int64 `json:"unknown_user"`
}

// Total is the number of skipped candidates.
func (s Skipped) Total() int64 {
	return s.NoContact + s.InvalidContact + s.DuplicateDestination + s.PreviouslyReceived + s.ControlGroup + s.UnknownUser
}

// Status is a run's outcome.
type Status string

const (
	StatusCompleted Status = "completed"
	StatusRejected  Status = "rejected"
	StatusFailed    Status = "failed"
)

// Result is a run's result (CONTRACT.md section 8).
type Result struct {
	RequestID  string           `json:"request_id"`
	Action     job.Action       `json:"action"`
	Status     Status           `json:"status"`
	Candidates int64            `json:"candidates"`
	Published  int64            `json:"published"`
	Skipped    Skipped          `json:"skipped"`
	Variants   map[string]int64 `json:"variants"`
	DurationMS int64            `json:"duration_ms"`
	// Error says why a run was rejected or failed.
	Error string `json:"error,omitempty"`
}
