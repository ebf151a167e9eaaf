package sqssink

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/segpub/segpub/internal/awstest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/reliability"
	"github.com/segpub/segpub/internal/sink/sinktest"
)

// faultProxy sits between the SDK and kumo and answers SendMessageBatch
// the ways SQS fails, in turn: a 500, a throttling error, and a 200 in
// which some entries failed (those entries are withheld from kumo, as SQS
// does not store a failed entry). Other calls pass through.
type faultProxy struct {
	target  *url.URL
	mu      sync.Mutex
	calls   int
	entries []int // entries per SendMessageBatch request that reached it
	bytes   []int
	faults  map[string]int
	// resend counts entries that must be sent again: those of a failed
	// request and the failed entries of a partial failure.
	resend int
}

type batchRequest struct {
	QueueUrl string
	Entries  []map[string]any
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".SendMessageBatch") {
		p.forward(w, r, body)
		return
	}
	var req batchRequest
	_ = json.Unmarshal(body, &req)
	size := 0
	for _, e := range req.Entries {
		s, _ := e["MessageBody"].(string)
		size += len(s)
	}
	p.mu.Lock()
	p.calls++
	call := p.calls
	p.entries = append(p.entries, len(req.Entries))
	p.bytes = append(p.bytes, size)
	p.mu.Unlock()
	fault := func(kind string, status int, typ string) {
		p.mu.Lock()
		p.faults[kind]++
		p.resend += len(req.Entries)
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-Query-Error", typ+";Sender")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"__type":"com.amazonaws.sqs#` + typ + `","message":"injected"}`))
	}
	switch call % 4 {
	case 1:
		fault("5xx", http.StatusInternalServerError, "InternalError")
		return
	case 2:
		fault("throttling", http.StatusBadRequest, "ThrottlingException")
		return
	case 3:
		if len(req.Entries) > 1 {
			// Every other entry fails inside a 200.
			var keep, failed []map[string]any
			for i, e := range req.Entries {
				if i%2 == 1 {
					failed = append(failed, e)
				} else {
					keep = append(keep, e)
				}
			}
			all := len(req.Entries)
			req.Entries = keep
			fwd, _ := json.Marshal(req)
			rec := httptest.NewRecorder()
			p.forward(rec, r, fwd)
			var out map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK {
				// The emulator itself failed the request: the client
				// re-sends all of it.
				p.mu.Lock()
				p.resend += all
				p.mu.Unlock()
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			var fl []any
			if prev, ok := out["Failed"].([]any); ok {
				fl = prev
			}
			for _, e := range failed {
				fl = append(fl, map[string]any{"Id": e["Id"], "Code": "InternalError", "SenderFault": false, "Message": "injected"})
			}
			out["Failed"] = fl
			p.mu.Lock()
			p.faults["partial"] += len(failed)
			p.resend += len(failed)
			p.mu.Unlock()
			data, _ := json.Marshal(out)
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			_, _ = w.Write(data)
			return
		}
	}
	if p.forward(w, r, body) != http.StatusOK {
		// Under load the emulator (or the hop to it) can fail a request
		// of its own; the client re-sends it, which is not a re-send of
		// more than failed.
		p.mu.Lock()
		p.resend += len(req.Entries)
		p.mu.Unlock()
	}
}

// forward passes a request on to the emulator and returns the status it
// answered with.
func (p *faultProxy) forward(w http.ResponseWriter, r *http.Request, body []byte) int {
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target.String()+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return http.StatusBadGateway
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	return resp.StatusCode
}

// Through 5xx answers, throttling and entries failed inside a 200, every
// message reaches the queue exactly once, only failed entries are re-sent,
// and no request carries more than 10 entries or more than the byte limit.
func TestInjectedFaults(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	target, _ := url.Parse(aws.ToString(cfg.BaseEndpoint))
	proxy := &faultProxy{target: target, faults: map[string]int{}}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	direct := sqs.NewFromConfig(cfg)
	viaProxy := cfg.Copy()
	viaProxy.BaseEndpoint = aws.String(srv.URL)
	client, err := NewBatchClient(context.Background(), sqs.NewFromConfig(viaProxy, PoolOptions(4)))
	if err != nil {
		t.Fatal(err)
	}

	q, err := direct.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("faults-email")})
	if err != nil {
		t.Fatal(err)
	}
	qurl := aws.ToString(q.QueueUrl)
	pattern := strings.Replace(qurl, "faults-email", "faults-{channel}", 1)
	// The proxy fails three calls in four: requests in flight together can
	// meet a fault many times in a row.
	s, err := New(Config{Client: client, URLPattern: pattern, InFlight: 4, Backoff: time.Millisecond, Retries: 30, MaxRequestBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(300, 100)
	start := time.Now()
	if err := s.Publish(context.Background(), sinktest.BatchFromLines(job.ChannelEmail, ls)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"5xx", "throttling", "partial"} {
		if proxy.faults[k] == 0 {
			t.Fatalf("no %s fault was injected: %v", k, proxy.faults)
		}
	}
	// Requests: none over 10 entries or the byte limit. The entries sent
	// in all are the messages plus, for each failed request or entry, one
	// more: a 5xx or throttled request re-sends its entries, a partial
	// failure only its failed ones.
	total := 0
	for i, n := range proxy.entries {
		if n > 10 || proxy.bytes[i] > 4<<10 {
			t.Fatalf("request %d: %d entries, %d bytes", i, n, proxy.bytes[i])
		}
		total += n
	}
	if total != 300+proxy.resend {
		t.Fatalf("%d entries sent, want 300 plus the %d that failed: more than the failed ones were re-sent", total, proxy.resend)
	}
	wall := time.Since(start)
	w := &world{client: direct, pattern: pattern}
	got := w.read(t, job.ChannelEmail, 300)
	want := make([][]byte, len(ls))
	for i, l := range ls {
		want[i] = []byte(l)
	}
	reliability.Check(t, reliability.Classify(want, got), wall,
		reliability.Field{Name: "requests", Value: strconv.Itoa(len(proxy.entries))},
		reliability.Field{Name: "entries sent", Value: strconv.Itoa(total)},
		reliability.Field{Name: "5xx", Value: strconv.Itoa(proxy.faults["5xx"])},
		reliability.Field{Name: "throttled", Value: strconv.Itoa(proxy.faults["throttling"])},
		reliability.Field{Name: "entries failed in a 200", Value: strconv.Itoa(proxy.faults["partial"])})
}
