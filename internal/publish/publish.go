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
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/tz"
)

// Sink receives a run's channel messages. Publish returns once the
// destination has accepted every message of the batch; the engine never
// reuses a batch before that. What a sink can do beyond publishing is
// declared as data by Capabilities, never found by type assertion: a
// wrapper (metrics.Sink) that embeds the Sink it wraps forwards all of it,
// and one that does not must still say what it forwards.
type Sink interface {
	Publish(ctx context.Context, b *Batch) error
	// Capabilities says what the sink can do; the engine reads it once a
	// run.
	Capabilities() Capabilities
	// Close flushes what the sink buffers and releases what it holds (files,
	// producers). The sink is not used after it.
	Close() error
}

// Capabilities is what a sink declares about itself.
type Capabilities struct {
	// Window is how many batches the engine keeps in flight (several
	// Publish calls at once): enough to hide a destination's round trip.
	// Checkpoints still advance in publishing order, and only past batches
	// the destination acknowledged, so a crash re-sends at most the window,
	// with the same keys. 0 or 1: one batch at a time.
	Window int
	// MaxMessageBytes is the largest message body, in bytes, the
	// destination accepts (a NATS server's max_payload, SQS's message
	// size); 0 means no limit. The engine checks every message against it
	// before the message is sent, so one oversized message is skipped and
	// counted instead of failing the run, and a resumed run skips exactly
	// the same ones.
	MaxMessageBytes int
	// Staging, when not nil, keeps each run's messages apart until the run
	// has completed (file:// outputs).
	Staging Staging
	// Duplicates, when not nil, returns the running total of messages the
	// destination dropped as already held (by idempotency key).
	Duplicates func() int64
}

// Plain gives a sink that declares no capabilities and holds nothing to
// close both methods: embed it.
type Plain struct{}

// Capabilities declares nothing.
func (Plain) Capabilities() Capabilities { return Capabilities{} }

// Close has nothing to release.
func (Plain) Close() error { return nil }

// Staging keeps each run's messages apart until the run has completed:
// an interrupted run then leaves nothing that looks complete, and a
// destination never holds a run twice. The engine calls Begin before a
// publishing run's first batch and Commit once every batch is acknowledged
// and the counts add up.
type Staging interface {
	// Begin starts the run's messages for the channel, or resumes them
	// after the first done ones (a resumed run's checkpoint). It returns
	// a rejection when the destination already holds the run.
	Begin(ctx context.Context, run RunID, ch job.Channel, done int64) error
	// Commit makes the run's messages part of the destination.
	Commit(ctx context.Context, run RunID, ch job.Channel) error
}

// RunID names a run's messages at a sink.
type RunID struct {
	RequestID string
	// Part is "" for a whole run; for a run of one Range, the range
	// ("from:" and its first notifly_user_id, "from:" for the first
	// range).
	Part string
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
	// Run is the run the batch belongs to.
	Run RunID
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

	// published and variants are the run's published messages, in all
	// and by variant, up to the end of this batch (those of earlier
	// attempts included): once the batch is acknowledged, the run has
	// published exactly these.
	published int64
	variants  map[string]int64
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
	// Zone is the contract's time zone: event windows count its calendar
	// days (section 3) and the night-time rule reads its clock (section
	// 10). Default: audience.DefaultZone (Asia/Seoul), as the contract
	// says.
	Zone *time.Location
	// Progress, when set, is told every run's counts as they grow (see
	// Hooks.Progress). It may be called from several goroutines at once.
	Progress func(Progress)
	// Trace, when set, is told the outcome of every candidate (operator
	// tools: segpub why). It runs on the engine's hot path: keep it cheap.
	Trace func(Outcome)
	// ShapeUsers: a run over a project of at least this many users (the
	// planner's estimate) samples them to choose how it reads a segment
	// (see shapeRead). Default: DefaultShapeUsers; negative: never.
	ShapeUsers int
	// Failpoints lets tests fail a run at named points (internal/failpoint).
	// Nil in production.
	Failpoints *failpoint.Set
}

// DefaultShapeUsers is Config.ShapeUsers's default: below it, reading
// every device costs a fraction of a second.
const DefaultShapeUsers = 100_000

// Outcome is what happened to one candidate.
type Outcome struct {
	UserID, ExternalUserID, DeviceID string
	// Reason is a skip reason (the Skipped field's JSON name), or
	// "published".
	Reason    string
	VariantID string
	// NoConsent, Capped and Deferred say which governance rules applied to
	// the candidate, whichever reason it was counted under (a candidate
	// without consent may also be capped), for `segpub explain`.
	NoConsent, Capped, Deferred bool
	// Delivery targeting (docs/delivery.md), for `segpub explain`
	// and `segpub why`: the base time (zero without local_time), the zone
	// it was computed in and whether that is the fallback; the locale
	// chosen ("" when none or without localized_messages).
	BaseTime     time.Time
	BasePassed   bool
	Zone         string
	ZoneFallback bool
	Locale       string
	// DeviceUpdatedAt is the device's updated_at (most_recent_device_only
	// picks by it).
	DeviceUpdatedAt time.Time
	// Message is the channel message, for a published candidate of a
	// publish run; it is only valid during the call.
	Message []byte
}

// Progress is a running run's counts so far: the candidates checked, and
// the messages the channel destination acknowledged (those of earlier
// attempts of a resumed run included).
type Progress struct {
	Candidates int64
	Published  int64
	// Skipped is the skips so far of the candidates checked (a resumed
	// run checks its candidates again from the start, so these are the
	// run's, not the attempt's); nil when none is known yet.
	Skipped *Skipped
}

// Hooks are one run's own callbacks.
type Hooks struct {
	// OnAck, when set, is called with the new checkpoint as the sink
	// acknowledges batches, in publishing order: after each batch, except
	// that batches already acknowledged when it is due share one call
	// (the last one's checkpoint), so a slow OnAck never holds up the
	// window. It is called before the run returns for the last
	// acknowledged batch. An error fails the run.
	OnAck func(Checkpoint) error
	// Progress, when set, is called with the run's counts after every
	// batch of candidates checked and every batch acknowledged, possibly
	// from several goroutines at once: keep it cheap.
	Progress func(Progress)
}

func (c *Config) withDefaults() Config {
	out := *c
	out.Logger = cmp.Or(out.Logger, slog.New(slog.DiscardHandler))
	out.BatchSize = cmp.Or(out.BatchSize, 1000)
	if out.Open == nil {
		out.Open = OpenFile
	}
	out.MaxCSVBytes = cmp.Or(out.MaxCSVBytes, DefaultMaxCSVBytes)
	out.ShapeUsers = cmp.Or(out.ShapeUsers, DefaultShapeUsers)
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
	// zones caches time zones by name for every run (local_time).
	zones *tz.Cache
}

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	out := cfg.withDefaults()
	if out.Zone == nil {
		zone, err := audience.LoadZone(audience.DefaultZone)
		if err != nil {
			return nil, fmt.Errorf("publish: Config.Zone: %w", err)
		}
		out.Zone = zone
	}
	return &Runner{cfg: out, zones: tz.NewCache(tz.DefaultCacheSize)}, nil
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
	// NoConsent and FrequencyCapped are the delivery governance reasons
	// (docs/governance.md); always present, 0 when the rules are off.
	NoConsent       int64 `json:"no_consent"`
	FrequencyCapped int64 `json:"frequency_capped"`
	// LocalTimePassed and OlderDevice are the delivery targeting reasons
	// (docs/delivery.md); always present, 0 when off.
	LocalTimePassed int64 `json:"local_time_passed"`
	OlderDevice     int64 `json:"older_device"`
}

// SkipReasons are the skip reasons (the Skipped fields' JSON names) in the
// order the checks apply them (docs/recipients.md, docs/governance.md and docs/delivery.md).
var SkipReasons = [...]string{"unknown_user", "previously_received", "no_consent", "frequency_capped", "local_time_passed",
	"control_group", "no_contact", "invalid_contact", "older_device", "duplicate_destination"}

// counters are s's counts, index for index with SkipReasons.
func (s *Skipped) counters() [len(SkipReasons)]*int64 {
	return [...]*int64{&s.UnknownUser, &s.PreviouslyReceived, &s.NoConsent, &s.FrequencyCapped, &s.LocalTimePassed,
		&s.ControlGroup, &s.NoContact, &s.InvalidContact, &s.OlderDevice, &s.DuplicateDestination}
}

// ReasonCount is one skip reason's count.
type ReasonCount struct {
	Reason string
	N      int64
}

// ByReason lists the counts in the order the checks apply them.
func (s Skipped) ByReason() []ReasonCount {
	out := make([]ReasonCount, len(SkipReasons))
	for i, n := range s.counters() {
		out[i] = ReasonCount{SkipReasons[i], *n}
	}
	return out
}

// Total is the number of skipped candidates.
func (s Skipped) Total() int64 {
	var t int64
	for _, n := range s.counters() {
		t += *n
	}
	return t
}

// Add adds o's counts to s (the partitions of a run).
func (s *Skipped) Add(o Skipped) {
	theirs := o.counters()
	for i, n := range s.counters() {
		*n += *theirs[i]
	}
}

// Add adds o's counts to r (the ranges of a partitioned run): candidates,
// published, skipped, deferred, unpublishable and variants.
func (r *Result) Add(o *Result) {
	r.Candidates += o.Candidates
	r.Published += o.Published
	r.Skipped.Add(o.Skipped)
	r.Deferred += o.Deferred
	r.Unpublishable.MessageTooLarge += o.Unpublishable.MessageTooLarge
	if r.Variants == nil && len(o.Variants) > 0 {
		r.Variants = map[string]int64{}
	}
	for k, v := range o.Variants {
		r.Variants[k] += v
	}
	r.BaseTimes = MergeBaseTimes(r.BaseTimes, o.BaseTimes)
}

// BaseTimeCount is how many messages a run numbered at one base time
// (their waves count from it).
type BaseTimeCount struct {
	At       time.Time `json:"base_time"`
	Messages int64     `json:"messages"`
}

// MergeBaseTimes adds b's counts to a's, earliest first.
func MergeBaseTimes(a, b []BaseTimeCount) []BaseTimeCount {
	if len(b) == 0 {
		return a
	}
	byTime := map[int64]int64{}
	for _, x := range append(append([]BaseTimeCount(nil), a...), b...) {
		byTime[x.At.Unix()] += x.Messages
	}
	out := make([]BaseTimeCount, 0, len(byTime))
	for at, n := range byTime {
		out = append(out, BaseTimeCount{At: time.Unix(at, 0).UTC(), Messages: n})
	}
	slices.SortFunc(out, func(x, y BaseTimeCount) int { return x.At.Compare(y.At) })
	return out
}

// Unpublishable counts candidates that passed every check of the contract
// but whose message the channel destination cannot take, by reason. They
// are outside Skipped, whose keys the contract fixes, so for a publish run
// candidates = published + sum(skipped) + sum(unpublishable).
type Unpublishable struct {
	// MessageTooLarge counts messages over the destination's size limit
	// (Capabilities.MaxMessageBytes).
	MessageTooLarge int64 `json:"message_too_large"`
}

// Total is the number of unpublishable candidates.
func (u Unpublishable) Total() int64 { return u.MessageTooLarge }

// Status is a run's outcome.
type Status string

const (
	StatusCompleted Status = "completed"
	StatusRejected  Status = "rejected"
	// StatusCancelled is an operator's cancel: the counts are what the
	// output acknowledged before the run stopped.
	StatusCancelled Status = "cancelled"
	StatusFailed    Status = "failed"
)

// Result is a run's result (docs/result.md).
type Result struct {
	RequestID  string     `json:"request_id"`
	Action     job.Action `json:"action"`
	Status     Status     `json:"status"`
	Candidates int64      `json:"candidates"`
	Published  int64      `json:"published"`
	Skipped    Skipped    `json:"skipped"`
	// Deferred counts the published messages whose send_at the night-time
	// rule moved to 08:00 Asia/Seoul (docs/governance.md).
	Deferred int64            `json:"deferred"`
	Variants map[string]int64 `json:"variants"`
	// Unpublishable is omitted when empty (docs/decisions.md).
	Unpublishable Unpublishable `json:"unpublishable,omitzero"`
	// BaseTimes is the distribution of the messages' base times, earliest
	// first, with delivery.local_time (docs/delivery.md); omitted
	// without it (docs/decisions.md).
	BaseTimes  []BaseTimeCount `json:"base_times,omitempty"`
	DurationMS int64           `json:"duration_ms"`
	// Error says why a run was rejected or failed.
	Error string `json:"error,omitempty"`
	// Destinations are what a run of a Range with Collect found; not
	// part of the result's JSON.
	Destinations []uint64 `json:"-"`
}
