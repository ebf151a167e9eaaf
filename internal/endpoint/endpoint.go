// Package endpoint turns the service's setting URLs (docs/configuration.md)
// into queues, sinks and stores. It is the one place that knows every
// implementation; the worker and the engine see only interfaces.
//
// URL grammar (docs/configuration.md has the full table):
//
//	embedded: | embedded:///dir       JetStream embedded in this process
//	nats://host:4222[?stream=&subject=&consumer=]   standalone JetStream
//	https://sqs.<region>.amazonaws.com/<account>/<name>   Amazon SQS
//	sqs+http://host:port/<account>/<name>            SQS at another endpoint
//	file:///dir/{channel}.ndjson      files (channel output only)
//	pg: | pg:<table>                  a table in the state database (message store)
//	dynamodb://<table>                Amazon DynamoDB (message store)
//	kinesis://<stream>                Amazon Kinesis (run events)
package endpoint

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/events"
	"github.com/segpub/segpub/internal/fileurl"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/msgstore/pgstore"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue"
	"github.com/segpub/segpub/internal/queue/jsqueue"
	"github.com/segpub/segpub/internal/sink/filesink"
	"github.com/segpub/segpub/internal/sink/jssink"
)

// Role says what a queue is for; it picks JetStream defaults.
type Role int

const (
	Jobs Role = iota
	DeadLetters
)

// Opener opens endpoints. Its zero value is not usable: set State and NATS.
type Opener struct {
	// State is segpub's own database (ledger, pg: message store).
	State  *pgxpool.Pool
	NATS   *natsjs.Connector
	Logger *slog.Logger
	// AWS opens Amazon endpoints (NewAWS); nil: none.
	AWS AWSOpener
	// Lease is how long a received job stays with its worker without an
	// extension (JetStream's ack wait, SQS's visibility timeout). A job
	// whose worker died returns after it. Default: the queue's own.
	Lease time.Duration
	// MaxInFlight bounds the channel messages the output holds unacknowledged
	// (per process). Default: the output's own (JetStream 4096 messages,
	// SQS 16 batch requests of 10).
	MaxInFlight int
}

// AWSOpener opens Amazon SQS and DynamoDB endpoints.
type AWSOpener interface {
	Queue(ctx context.Context, url string, visibility time.Duration) (queue.Queue, error)
	Sink(ctx context.Context, pattern string, maxInFlight int) (publish.Sink, error)
	Store(ctx context.Context, table string) (msgstore.Store, error)
	Kinesis(ctx context.Context) (events.KinesisAPI, error)
}

// IsSQS reports whether u names an SQS queue.
func IsSQS(u string) bool {
	if strings.HasPrefix(u, "sqs+") {
		return true
	}
	p, err := url.Parse(u)
	return err == nil && p.Scheme == "https" && strings.HasPrefix(p.Host, "sqs.") && strings.HasSuffix(p.Host, ".amazonaws.com")
}

// Queue opens a job or dead-letter queue.
func (o *Opener) Queue(ctx context.Context, rawURL string, role Role) (queue.Queue, error) {
	if rawURL == "" {
		rawURL = "embedded:"
	}
	switch {
	case natsjs.IsURL(rawURL):
		conn, err := o.NATS.Connect(ctx, rawURL)
		if err != nil {
			return nil, err
		}
		cfg := jsqueue.Config{Conn: conn, AckWait: o.Lease}
		if role == DeadLetters {
			cfg.Stream = conn.Param("stream", "SEGPUB_DEAD_LETTERS")
			cfg.Subject = conn.Param("subject", "segpub.dead_letters")
			cfg.Consumer = conn.Param("consumer", "segpub-dead-letters")
		}
		return jsqueue.New(ctx, cfg)
	case IsSQS(rawURL):
		if o.AWS == nil {
			return nil, fmt.Errorf("queue URL %q: this build has no SQS support", rawURL)
		}
		return o.AWS.Queue(ctx, rawURL, o.Lease)
	}
	return nil, fmt.Errorf("queue URL %q: want embedded:, nats://… or an SQS queue URL", rawURL)
}

// Sink opens the channel output; pattern contains {channel}. The first
// entry of Sinks whose Match holds opens it. The caller closes it
// (Sink.Close) once no run uses it.
func (o *Opener) Sink(ctx context.Context, pattern string) (publish.Sink, error) {
	if pattern == "" {
		pattern = "embedded:"
	}
	names := make([]string, len(Sinks))
	for i, k := range Sinks {
		if k.Match(pattern) {
			return k.Open(ctx, o, pattern)
		}
		names[i] = k.Name
	}
	return nil, fmt.Errorf("channel URL %q: want %s", pattern, strings.Join(names[:len(names)-1], ", ")+" or "+names[len(names)-1])
}

// SinkKind is one kind of channel output, recognised by its URL.
type SinkKind struct {
	// Name is how a rejection names the URL it wants.
	Name string
	// Match reports whether a channel URL names this output.
	Match func(pattern string) bool
	// Open opens it; the sink's Close flushes what it buffers.
	Open func(ctx context.Context, o *Opener, pattern string) (publish.Sink, error)
}

// Sinks is the table of channel outputs, in the order they are matched: a
// new output is an entry here (and its package, which passes sinktest).
var Sinks = []SinkKind{
	{
		Name:  "file://",
		Match: func(p string) bool { return strings.HasPrefix(p, "file://") },
		Open: func(_ context.Context, _ *Opener, p string) (publish.Sink, error) {
			return filesink.New(p)
		},
	},
	{
		Name:  "embedded:, nats://…",
		Match: natsjs.IsURL,
		Open: func(ctx context.Context, o *Opener, p string) (publish.Sink, error) {
			conn, err := o.NATS.Connect(ctx, p)
			if err != nil {
				return nil, err
			}
			return jssink.New(ctx, jssink.Config{Conn: conn, MaxInFlight: o.MaxInFlight})
		},
	},
	{
		Name:  "an SQS queue URL with {channel}",
		Match: IsSQS,
		Open: func(ctx context.Context, o *Opener, p string) (publish.Sink, error) {
			if !strings.Contains(p, "{channel}") {
				return nil, fmt.Errorf("channel URL %q: an SQS pattern needs {channel}", p)
			}
			if o.AWS == nil {
				return nil, fmt.Errorf("channel URL %q: this build has no SQS support", p)
			}
			return o.AWS.Sink(ctx, p, o.MaxInFlight)
		},
	},
}

// Store opens the claim-check message store.
func (o *Opener) Store(ctx context.Context, rawURL string) (msgstore.Store, error) {
	if rawURL == "" {
		rawURL = "pg:"
	}
	switch {
	case strings.HasPrefix(rawURL, "pg:"):
		return pgstore.New(ctx, o.State, strings.TrimPrefix(rawURL, "pg:"))
	case strings.HasPrefix(rawURL, "dynamodb://"):
		if o.AWS == nil {
			return nil, fmt.Errorf("message store URL %q: this build has no DynamoDB support", rawURL)
		}
		return o.AWS.Store(ctx, strings.TrimPrefix(rawURL, "dynamodb://"))
	}
	return nil, fmt.Errorf("message store URL %q: want pg:[table] or dynamodb://table", rawURL)
}

// Events opens the run-event stream; "" means none.
func (o *Opener) Events(ctx context.Context, rawURL string) (events.Emitter, error) {
	switch {
	case rawURL == "":
		return nil, nil
	case strings.HasPrefix(rawURL, "file://"):
		path, _, err := fileurl.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("events URL %q: %w", rawURL, err)
		}
		return events.NewFile(path)
	case natsjs.IsURL(rawURL):
		conn, err := o.NATS.Connect(ctx, rawURL)
		if err != nil {
			return nil, err
		}
		return events.NewJetStream(ctx, conn.JS, conn.Param("stream", "SEGPUB_EVENTS"), conn.Param("subject", "segpub.events"))
	case strings.HasPrefix(rawURL, "kinesis://"):
		if o.AWS == nil {
			return nil, fmt.Errorf("events URL %q: this build has no Kinesis support", rawURL)
		}
		client, err := o.AWS.Kinesis(ctx)
		if err != nil {
			return nil, err
		}
		return events.NewKinesis(client, strings.TrimPrefix(rawURL, "kinesis://")), nil
	}
	return nil, fmt.Errorf("events URL %q: want file://, embedded:, nats://… or kinesis://stream", rawURL)
}
