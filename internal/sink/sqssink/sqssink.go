// Package sqssink publishes channel messages to Amazon SQS, one queue per
// channel, with SendMessageBatch: at most 10 entries and a byte limit per
// request, many requests in flight. Entries that fail inside a successful
// response are re-sent, and only those, with backoff; Publish returns once
// every message is accepted.
package sqssink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/segpub/segpub/internal/publish"
)

// API is the part of the SQS client the sink uses.
type API interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// Config configures a Sink.
type Config struct {
	Client API
	// URLPattern is the queue URL with {channel} for the channel name.
	URLPattern string
	// MaxRequestBytes bounds a request's total message size. Default:
	// 262144 (256 KiB; newer queues allow 1 MiB).
	MaxRequestBytes int
	// MaxMessageBytes is the largest message the queues accept (their
	// MaximumMessageSize); the engine skips larger messages. Default:
	// DefaultMaxMessageBytes, or the URL parameter max_message_bytes
	// (up to 1048576 for queues that allow 1 MiB).
	MaxMessageBytes int
	// InFlight is how many requests run at once, over all the batches in
	// flight. Default: DefaultInFlight.
	InFlight int
	// Window is how many batches the engine hands over at once (see
	// publish.Capabilities). Default: DefaultWindow.
	Window int
	// Retries is how many times failed entries are re-sent. Default:
	// DefaultRetries.
	Retries int
	// Backoff is the base delay between retries, doubled each time up to
	// MaxBackoff, with jitter. Default: 100ms.
	Backoff time.Duration
}

// DefaultMaxMessageBytes is SQS's default (and long-standing) message size
// limit, 256 KiB.
const DefaultMaxMessageBytes = 256 << 10

// maxMessageParam is the queue URL parameter that sets MaxMessageBytes.
const maxMessageParam = "max_message_bytes"

// DefaultInFlight hides a round trip of about 20 ms (SendMessageBatch in
// the same region): 256 requests of 10 entries each in flight carry about
// 128k messages per second at that latency, more than a 2-core task can
// encode, so the client's CPU, not the network, is the limit.
const DefaultInFlight = 256

// DefaultRetries and MaxBackoff give SQS about a minute to recover (an
// outage, throttling) before a batch fails: 100 ms doubling to 10 s, then
// 10 s, 12 times. The BatchClient makes one attempt per call, so these are
// all the retries a request gets.
const (
	DefaultRetries = 12
	MaxBackoff     = 10 * time.Second
)

// DefaultWindow is the number of batches in flight: with the engine's
// 1,000-message batches (100 requests each), enough to keep
// DefaultInFlight requests busy while the next batch is being filled.
const DefaultWindow = 4

// Sink is an SQS channel sink. Publish may be called from several
// goroutines at once: all of them share InFlight.
type Sink struct {
	cfg   Config
	slots chan struct{}
	// idle hands a request to a sender goroutine waiting for work. Senders
	// outlive the request they were started for (until idleSender passes
	// without work): a request runs deep in the SDK's middleware, and a
	// fresh goroutine per request grows its stack by copying, every time
	// (6% of the CPU of a run at 256 requests in flight).
	idle chan *request
}

// idleSender is how long a sender goroutine waits for another request.
const idleSender = 5 * time.Second

// request is one SendMessageBatch call of a Publish.
type request struct {
	ctx  context.Context
	url  string
	fifo bool
	msgs []publish.Message
	done func(error)
}

// New returns a Sink.
func New(cfg Config) (*Sink, error) {
	if base, query, ok := strings.Cut(cfg.URLPattern, "?"); ok {
		// SQS queue URLs carry no query: the parameters are segpub's.
		vals, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("sqssink: URL %q: %w", cfg.URLPattern, err)
		}
		for k := range vals {
			if k != maxMessageParam {
				return nil, fmt.Errorf("sqssink: URL %q: unknown parameter %q (want %s)", cfg.URLPattern, k, maxMessageParam)
			}
		}
		if v := vals.Get(maxMessageParam); v != "" && cfg.MaxMessageBytes == 0 {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("sqssink: URL parameter %s=%q: want a number of bytes from 1 to 1048576", maxMessageParam, v)
			}
			cfg.MaxMessageBytes = n
		}
		cfg.URLPattern = base
	}
	switch {
	case cfg.Client == nil:
		return nil, errors.New("sqssink: Config.Client is required")
	case !strings.Contains(cfg.URLPattern, "{channel}"):
		return nil, fmt.Errorf("sqssink: Config.URLPattern %q has no {channel}", cfg.URLPattern)
	case cfg.MaxRequestBytes < 0 || cfg.MaxRequestBytes > 1<<20:
		return nil, fmt.Errorf("sqssink: Config.MaxRequestBytes %d out of range 1..1048576", cfg.MaxRequestBytes)
	case cfg.InFlight < 0 || cfg.InFlight > 4096:
		return nil, fmt.Errorf("sqssink: Config.InFlight %d out of range 1..4096", cfg.InFlight)
	case cfg.Window < 0 || cfg.Window > 64:
		return nil, fmt.Errorf("sqssink: Config.Window %d out of range 1..64", cfg.Window)
	case cfg.MaxMessageBytes < 0 || cfg.MaxMessageBytes > 1<<20:
		return nil, fmt.Errorf("sqssink: %s (Config.MaxMessageBytes) %d out of range 1..1048576", maxMessageParam, cfg.MaxMessageBytes)
	}
	cfg.MaxMessageBytes = cmp.Or(cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	cfg.MaxRequestBytes = cmp.Or(cfg.MaxRequestBytes, 256<<10)
	cfg.InFlight = cmp.Or(cfg.InFlight, DefaultInFlight)
	cfg.Window = cmp.Or(cfg.Window, DefaultWindow)
	cfg.Retries = cmp.Or(cfg.Retries, DefaultRetries)
	cfg.Backoff = cmp.Or(cfg.Backoff, 100*time.Millisecond)
	return &Sink{cfg: cfg, slots: make(chan struct{}, cfg.InFlight), idle: make(chan *request)}, nil
}

// Capabilities: Window batches at once, messages up to the queues' size
// limit (Config.MaxMessageBytes).
func (s *Sink) Capabilities() publish.Capabilities {
	return publish.Capabilities{Window: s.cfg.Window, MaxMessageBytes: s.cfg.MaxMessageBytes}
}

// Close releases nothing: Publish returns only once SQS has accepted its
// batch, and the HTTP client's idle connections close with the process.
func (s *Sink) Close() error { return nil }

// requestWriteBuffer is the sink's HTTP connections' write buffer: a
// batch of ten messages of a few kilobytes each fits in one write, where
// the default 4 KiB buffer takes a system call per 4 KiB (7% of the sink's
// CPU time on the benchmark's 3.5 KB messages).
const requestWriteBuffer = 32 << 10

// PoolOptions sizes an SQS client for inFlight concurrent requests: a
// connection pool that keeps them all (the SDK's default keeps 10 idle
// connections per host, so at 256 requests in flight most would open a new
// TLS connection), and no client-side retry quota, which under sustained
// throttling runs dry and turns retryable errors into failures; the sink
// bounds its retries itself.
func PoolOptions(inFlight int) func(*sqs.Options) { return clientOptions(inFlight, 0) }

// SinkOptions are PoolOptions with the sink's own write buffer
// (requestWriteBuffer): the client the sink sends with.
func SinkOptions(inFlight int) func(*sqs.Options) {
	return clientOptions(inFlight, requestWriteBuffer)
}

func clientOptions(inFlight, writeBuffer int) func(*sqs.Options) {
	inFlight = cmp.Or(inFlight, DefaultInFlight)
	return func(o *sqs.Options) {
		o.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 2 * inFlight
			t.MaxIdleConnsPerHost = inFlight
			t.WriteBufferSize = writeBuffer // 0: net/http's default
		})
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.RateLimiter = ratelimit.None })
	}
}

// URLFor returns a channel's queue URL.
func (s *Sink) URLFor(channel string) string {
	return strings.ReplaceAll(s.cfg.URLPattern, "{channel}", channel)
}

// Publish sends a batch and returns when SQS has accepted all of it.
func (s *Sink) Publish(ctx context.Context, b *publish.Batch) error {
	url := s.URLFor(string(b.Channel))
	fifo := strings.HasSuffix(url, ".fifo")
	// The first failure cancels the batch's other requests, as the
	// batch fails as a whole.
	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	done := func(err error) {
		<-s.slots
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
				cancel(err)
			}
			mu.Unlock()
		}
		wg.Done()
	}
	cut := false
	for _, msgs := range s.split(b.Messages) {
		if !s.acquire(gctx) {
			cut = true
			break
		}
		wg.Add(1)
		r := &request{ctx: gctx, url: url, fifo: fifo, msgs: msgs, done: done}
		select {
		case s.idle <- r:
		default:
			go s.sender(r)
		}
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if cut {
		// Requests left unsent: the batch is not accepted.
		return context.Cause(gctx)
	}
	return nil
}

// acquire takes a request slot, unless ctx ends first.
func (s *Sink) acquire(ctx context.Context) bool {
	select {
	case s.slots <- struct{}{}:
		if ctx.Err() != nil {
			<-s.slots
			return false
		}
		return true
	case <-ctx.Done():
		return false
	}
}

// sender sends r, then the requests handed to it while it is idle.
func (s *Sink) sender(r *request) {
	t := time.NewTimer(idleSender)
	defer t.Stop()
	for {
		r.done(s.send(r.ctx, r.url, r.fifo, r.msgs))
		t.Reset(idleSender)
		select {
		case r = <-s.idle:
		case <-t.C:
			return
		}
	}
}

// split cuts messages into requests of at most 10 entries and
// MaxRequestBytes.
func (s *Sink) split(msgs []publish.Message) [][]publish.Message {
	var out [][]publish.Message
	start, size := 0, 0
	for i, m := range msgs {
		if i > start && (i-start == 10 || size+len(m.Body) > s.cfg.MaxRequestBytes) {
			out = append(out, msgs[start:i])
			start, size = i, 0
		}
		size += len(m.Body)
	}
	if start < len(msgs) {
		out = append(out, msgs[start:])
	}
	return out
}

// send sends one request, re-sending the entries that failed.
func (s *Sink) send(ctx context.Context, url string, fifo bool, msgs []publish.Message) error {
	entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		// The body is not copied: the engine keeps it unchanged until
		// Publish returns, and the client keeps nothing after the call.
		e := types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(unsafe.String(unsafe.SliceData(m.Body), len(m.Body)))}
		if fifo {
			key := string(m.Key)
			e.MessageDeduplicationId = aws.String(key)
			// 256 groups from the key's first two hex digits: FIFO
			// orders within a group only, so spreading messages over
			// groups keeps throughput up without mattering to anyone
			// (each message is a different recipient).
			e.MessageGroupId = aws.String("g" + key[:2])
		}
		entries[i] = e
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if attempt > s.cfg.Retries {
				return fmt.Errorf("send %d messages to %s: gave up after %d retries: %w", len(entries), url, s.cfg.Retries, lastErr)
			}
			d := min(s.cfg.Backoff<<min(attempt-1, 16), MaxBackoff)
			d += time.Duration(rand.Int64N(int64(d)/2 + 1))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		out, err := s.cfg.Client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Throttling, 5xx, network: the whole request again.
			lastErr = err
			continue
		}
		if len(out.Failed) == 0 {
			return nil
		}
		var failed []types.SendMessageBatchRequestEntry
		byID := make(map[string]types.SendMessageBatchRequestEntry, len(entries))
		for _, e := range entries {
			byID[*e.Id] = e
		}
		var sender []string
		for _, f := range out.Failed {
			if f.SenderFault {
				sender = append(sender, fmt.Sprintf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message)))
				continue
			}
			if e, ok := byID[aws.ToString(f.Id)]; ok {
				failed = append(failed, e)
			}
		}
		if len(sender) > 0 {
			// A malformed entry fails the same way every time.
			return fmt.Errorf("send to %s: %d entries rejected: %s", url, len(sender), strings.Join(sender, "; "))
		}
		lastErr = fmt.Errorf("%d entries failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Code))
		entries = failed
	}
}
