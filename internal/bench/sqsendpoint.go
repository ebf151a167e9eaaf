package bench

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"github.com/segpub/segpub/internal/sink/sqssink"
)

// SQSEndpoint answers SendMessageBatch (SQS's JSON protocol) after a fixed
// round-trip time, as an in-region SQS does after about 20 ms, and counts
// every entry it accepts and every distinct idempotency key among them.
// It keeps no messages: the benchmark measures the publisher's side of the
// network, and an emulator storing a million messages would take the CPU
// the publisher is measured with.
type SQSEndpoint struct {
	URL string
	rtt time.Duration
	srv *http.Server

	seed    maphash.Seed
	mu      sync.Mutex
	keys    map[uint64]struct{}
	entries atomic.Int64
	bytes   atomic.Int64
	reqs    atomic.Int64
	// first is when the first entry since the last Counts arrived (Unix
	// nanoseconds; 0: none yet).
	first atomic.Int64
}

// StartSQSEndpoint listens on a loopback port.
func StartSQSEndpoint(rtt time.Duration) (*SQSEndpoint, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the SQS endpoint: %w", err)
	}
	e := &SQSEndpoint{URL: "http://" + ln.Addr().String(), rtt: rtt, seed: maphash.MakeSeed(), keys: map[uint64]struct{}{}}
	e.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

// Close stops the endpoint.
func (e *SQSEndpoint) Close() error { return e.srv.Close() }

// SQSCounts is what an SQSEndpoint accepted.
type SQSCounts struct {
	Entries, Distinct, Requests, Bytes int64
	// First is when the first of those entries arrived: how long the
	// publisher took to send anything.
	First time.Time
}

// Counts returns what the endpoint accepted, then starts counting afresh.
func (e *SQSEndpoint) Counts() SQSCounts {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := SQSCounts{Entries: e.entries.Swap(0), Distinct: int64(len(e.keys)), Requests: e.reqs.Swap(0), Bytes: e.bytes.Swap(0)}
	if f := e.first.Swap(0); f != 0 {
		c.First = time.Unix(0, f)
	}
	e.keys = map[uint64]struct{}{}
	return c
}

type batchEntry struct {
	ID          string `json:"Id"`
	MessageBody string `json:"MessageBody"`
}

type batchResult struct {
	ID        string `json:"Id"`
	MessageID string `json:"MessageId"`
	MD5       string `json:"MD5OfMessageBody"`
}

func (e *SQSEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	e.first.CompareAndSwap(0, start.UnixNano())
	if target := r.Header.Get("X-Amz-Target"); target != "AmazonSQS.SendMessageBatch" {
		http.Error(w, `{"__type":"InvalidAction","message":"only SendMessageBatch"}`, http.StatusBadRequest)
		return
	}
	var in struct {
		Entries []batchEntry `json:"Entries"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, `{"__type":"MalformedInput"}`, http.StatusBadRequest)
		return
	}
	out := struct {
		Successful []batchResult `json:"Successful"`
		Failed     []struct{}    `json:"Failed"`
	}{Successful: make([]batchResult, len(in.Entries)), Failed: []struct{}{}}
	hashes := make([]uint64, len(in.Entries))
	for i, en := range in.Entries {
		sum := md5.Sum([]byte(en.MessageBody))
		out.Successful[i] = batchResult{ID: en.ID, MessageID: strconv.FormatInt(e.entries.Add(1), 10), MD5: hex.EncodeToString(sum[:])}
		hashes[i] = maphash.String(e.seed, idempotencyKey(en.MessageBody))
		e.bytes.Add(int64(len(en.MessageBody)))
	}
	e.mu.Lock()
	for _, h := range hashes {
		e.keys[h] = struct{}{}
	}
	e.mu.Unlock()
	e.reqs.Add(1)
	time.Sleep(e.rtt - time.Since(start))
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(out)
}

// idempotencyKey finds a channel message's key without decoding the whole
// message: the endpoint shares the machine with the publisher it measures.
func idempotencyKey(body string) string {
	const field = `"idempotency_key":"`
	i := strings.Index(body, field)
	if i < 0 || len(body) < i+len(field)+64 {
		return body
	}
	return body[i+len(field) : i+len(field)+64]
}

// SDKCeiling is what the AWS SDK alone sends to the endpoint: n messages
// of size bytes each, SendMessageBatch with 10 entries, inFlight requests
// at once, on a client with segpub's pool and retry settings but the
// SDK's own request serializer (sqssink.PoolOptions). It returns messages
// per second.
func SDKCeiling(ctx context.Context, endpoint string, n, size, inFlight int) (float64, error) {
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench", "")}, sqssink.PoolOptions(inFlight))
	url := endpoint + "/000000000000/bench-ceiling"
	pad := strings.Repeat("x", max(0, size-95)) // 95: the rest of the body
	requests := (n + 9) / 10
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for range inFlight {
		g.Go(func() error {
			entries := make([]types.SendMessageBatchRequestEntry, 10)
			for {
				r := next.Add(1) - 1
				if r >= int64(requests) {
					return nil
				}
				for i := range entries {
					body := fmt.Sprintf(`{"idempotency_key":"%064x","pad":"%s"}`, r*10+int64(i), pad)
					entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(body)}
				}
				if _, err := client.SendMessageBatch(gctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
					return fmt.Errorf("SDK ceiling: %w", err)
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return float64(requests*10) / time.Since(start).Seconds(), nil
}
