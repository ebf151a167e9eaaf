package sqssink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/segpub/segpub/internal/awstest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/sink/sinktest"
)

var n atomic.Int64

// world is a kumo server with one queue per channel.
type world struct {
	client *sqs.Client
	// batch is the BatchClient over client, as segpub sends.
	batch   *BatchClient
	pattern string
}

func newWorld(t *testing.T, fifo bool) *world {
	t.Helper()
	client := sqs.NewFromConfig(awstest.Config(t), PoolOptions(0))
	batch, err := NewBatchClient(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("q%d-", n.Add(1))
	suffix := ""
	attrs := map[string]string{}
	if fifo {
		suffix = ".fifo"
		attrs["FifoQueue"] = "true"
	}
	var url string
	for _, ch := range job.Channels {
		out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(prefix + string(ch) + suffix), Attributes: attrs})
		if err != nil {
			t.Fatal(err)
		}
		url = aws.ToString(out.QueueUrl)
	}
	base := url[:strings.LastIndex(url, "/")+1]
	return &world{client: client, batch: batch, pattern: base + prefix + "{channel}" + suffix}
}

// read receives and deletes up to want bodies from a channel's queue.
func (w *world) read(t *testing.T, ch job.Channel, want int) [][]byte {
	t.Helper()
	url := strings.ReplaceAll(w.pattern, "{channel}", string(ch))
	var out [][]byte
	// A short visibility timeout: a message received but not delivered
	// (a response lost on a loaded machine) comes back within the deadline
	// instead of after SQS's default 30 s.
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		res, err := w.client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, VisibilityTimeout: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			out = append(out, []byte(aws.ToString(m.Body)))
			if _, err := w.client.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// The sink passes the sink suite on standard and FIFO queues, through the
// BatchClient and through the SDK's client.
func TestSuite(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		fifo, sdk bool
	}{{false, false}, {true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("fifo=%v,sdk=%v", c.fifo, c.sdk), func(t *testing.T) {
			t.Parallel()
			sinktest.Run(t, func(t *testing.T) sinktest.Harness {
				w := newWorld(t, c.fifo)
				var api API = w.batch
				if c.sdk {
					api = w.client
				}
				s, err := New(Config{Client: api, URLPattern: w.pattern})
				if err != nil {
					t.Fatal(err)
				}
				return sinktest.Harness{Sink: s, Read: w.read}
			})
		})
	}
}

// counting records every request and can fail chosen entries inside a
// successful response: the real kumo call gets only the other entries.
type counting struct {
	API
	mu       sync.Mutex
	requests []int // entries per request
	bytes    []int
	sent     map[string]int // message body -> times sent to SQS
	failOnce map[string]bool
}

func (c *counting) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	c.mu.Lock()
	size := 0
	var pass []types.SendMessageBatchRequestEntry
	var failed []types.BatchResultErrorEntry
	for _, e := range in.Entries {
		size += len(aws.ToString(e.MessageBody))
		if c.failOnce[aws.ToString(e.MessageBody)] {
			delete(c.failOnce, aws.ToString(e.MessageBody))
			failed = append(failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), SenderFault: false})
			continue
		}
		pass = append(pass, e)
		c.sent[aws.ToString(e.MessageBody)]++
	}
	c.requests = append(c.requests, len(in.Entries))
	c.bytes = append(c.bytes, size)
	c.mu.Unlock()
	out := &sqs.SendMessageBatchOutput{}
	if len(pass) > 0 {
		real, err := c.API.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: in.QueueUrl, Entries: pass}, opts...)
		if err != nil {
			return nil, err
		}
		out = real
	}
	out.Failed = append(out.Failed, failed...)
	return out, nil
}

func lines(n, pad int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf(`{"idempotency_key":"%064x","pad":"%s"}`, i+1, strings.Repeat("y", pad)))
	}
	return out
}

// No request has more than 10 entries or more than the byte limit.
func TestRequestLimits(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	c := &counting{API: w.batch, sent: map[string]int{}, failOnce: map[string]bool{}}
	s, err := New(Config{Client: c, URLPattern: w.pattern, MaxRequestBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	small := sinktest.BatchFromLines(job.ChannelEmail, lines(95, 10))
	big := sinktest.BatchFromLines(job.ChannelEmail, lines(9, 20<<10))
	for _, b := range []*publish.Batch{small, big} {
		if err := s.Publish(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range c.requests {
		if n > 10 || c.bytes[i] > 64<<10 {
			t.Fatalf("request %d: %d entries, %d bytes", i, n, c.bytes[i])
		}
	}
	// 95 small ones need 10 requests; 9 of 20 KiB under 64 KiB need 3.
	if len(c.requests) != 13 {
		t.Fatalf("%d requests, want 13: %v", len(c.requests), c.requests)
	}
	if got := w.read(t, job.ChannelEmail, 104); len(got) != 104 {
		t.Fatalf("%d messages arrived", len(got))
	}
}

// Entries that fail inside a 200 response are re-sent, only they, and every
// message arrives once.
func TestPartialFailure(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	ls := lines(30, 0)
	c := &counting{API: w.batch, sent: map[string]int{}, failOnce: map[string]bool{ls[3]: true, ls[14]: true, ls[29]: true}}
	s, err := New(Config{Client: c, URLPattern: w.pattern, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(context.Background(), sinktest.BatchFromLines(job.ChannelText, ls)); err != nil {
		t.Fatal(err)
	}
	// 3 requests of 10, then one retry of 1 for each failed entry. Requests
	// run concurrently, so a retry may go before the third request of 10.
	sizes := map[int]int{}
	for _, n := range c.requests {
		sizes[n]++
	}
	if len(c.requests) != 6 || sizes[10] != 3 || sizes[1] != 3 {
		t.Fatalf("requests %v, want three of 10 and three retries of only the failed entry", c.requests)
	}
	got := w.read(t, job.ChannelText, 30)
	seen := map[string]int{}
	for _, g := range got {
		seen[string(g)]++
	}
	for _, l := range ls {
		if seen[l] != 1 {
			t.Fatalf("message seen %d times", seen[l])
		}
	}
}

// gauge counts requests in flight around the real client.
type gauge struct {
	API
	running, peak atomic.Int32
}

func (g *gauge) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	n := g.running.Add(1)
	defer g.running.Add(-1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	time.Sleep(2 * time.Millisecond) // a round trip, so requests overlap
	return g.API.SendMessageBatch(ctx, in, opts...)
}

// Batches published at once (the engine's window) share InFlight: never
// more requests than that, and every message of every batch arrives.
func TestConcurrentBatchesShareInFlight(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	g := &gauge{API: w.batch}
	s, err := New(Config{Client: g, URLPattern: w.pattern, InFlight: 6, Window: 3})
	if err != nil {
		t.Fatal(err)
	}
	if w := s.Capabilities().Window; w != 3 {
		t.Fatalf("window %d, want 3", w)
	}
	all := lines(400, 10)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for k := range 4 {
		wg.Go(func() {
			errs <- s.Publish(context.Background(), sinktest.BatchFromLines(job.ChannelEmail, all[k*100:(k+1)*100]))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := g.peak.Load(); p > 6 || p < 2 {
		t.Fatalf("peak requests in flight %d, want 2..6", p)
	}
	got := w.read(t, job.ChannelEmail, 400)
	seen := map[string]bool{}
	for _, b := range got {
		seen[string(b)] = true
	}
	if len(got) != 400 || len(seen) != 400 {
		t.Fatalf("%d messages arrived, %d distinct; want 400", len(got), len(seen))
	}
}

// The pool options keep a pool as large as the requests in flight and
// turn off the SDK's retry quota.
func TestPoolOptions(t *testing.T) {
	t.Parallel()
	o := sqs.Options{}
	PoolOptions(300)(&o)
	bc, ok := o.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		t.Fatalf("HTTP client %T", o.HTTPClient)
	}
	if tr := bc.GetTransport(); tr.MaxIdleConnsPerHost != 300 {
		t.Fatalf("MaxIdleConnsPerHost %d, want 300", tr.MaxIdleConnsPerHost)
	}
	std, ok := o.Retryer.(*retry.Standard)
	if !ok {
		t.Fatalf("retryer %T", o.Retryer)
	}
	// With a quota, thousands of retryable failures would exhaust it.
	for range 2000 {
		if _, err := std.GetRetryToken(context.Background(), errors.New("throttled")); err != nil {
			t.Fatalf("retry token refused: %v", err)
		}
	}
}

// The message size limit is a setting: 256 KiB by default, up to 1 MiB
// for queues that allow it, as the URL parameter max_message_bytes.
func TestMaxMessageBytes(t *testing.T) {
	t.Parallel()
	client := sqs.NewFromConfig(aws.Config{Region: "us-east-1"})
	const base = "https://sqs.us-east-1.amazonaws.com/1/q-{channel}"
	for url, want := range map[string]int{base: DefaultMaxMessageBytes, base + "?max_message_bytes=1048576": 1 << 20} {
		s, err := New(Config{Client: client, URLPattern: url})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Capabilities().MaxMessageBytes; got != want {
			t.Fatalf("%s: limit %d, want %d", url, got, want)
		}
		if got := s.URLFor("email"); got != "https://sqs.us-east-1.amazonaws.com/1/q-email" {
			t.Fatalf("%s: queue URL %s", url, got)
		}
	}
	for _, bad := range []string{"?max_message_bytes=1048577", "?max_message_bytes=0", "?max_message_bytes=big", "?max_bytes=5"} {
		_, err := New(Config{Client: client, URLPattern: base + bad})
		if err == nil || !strings.Contains(err.Error(), "max_") {
			t.Fatalf("%s: err %v, want one naming the parameter", bad, err)
		}
	}
}
