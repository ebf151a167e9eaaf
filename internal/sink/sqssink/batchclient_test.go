package sqssink

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/sink/sinktest"
)

// scripted answers SendMessageBatch as SQS does, except that answer may
// change an answer, and counts the times each body was sent.
type scripted struct {
	mu     sync.Mutex
	sent   map[string]int
	answer func(entries []batchEntry, status *int, out map[string]any)
	header http.Header
	body   string // when set, the raw answer
}

type batchEntry struct {
	ID          string `json:"Id"`
	MessageBody string `json:"MessageBody"`
}

func (s *scripted) Do(r *http.Request) (*http.Response, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	var in struct{ Entries []batchEntry }
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ok []map[string]any
	for _, e := range in.Entries {
		s.sent[e.MessageBody]++
		sum := md5.Sum([]byte(e.MessageBody))
		ok = append(ok, map[string]any{"Id": e.ID, "MessageId": "m-" + e.ID, "MD5OfMessageBody": hex.EncodeToString(sum[:])})
	}
	status := http.StatusOK
	out := map[string]any{"Successful": ok, "Failed": []any{}}
	if s.answer != nil {
		s.answer(in.Entries, &status, out)
	}
	body, _ := json.Marshal(out)
	if s.body != "" {
		body = []byte(s.body)
	}
	h := http.Header{"Content-Type": {"application/x-amz-json-1.0"}, "X-Amzn-Requestid": {"req-1"}}
	for k, v := range s.header {
		h[k] = v
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(string(body))), Request: r}, nil
}

func batchClient(t *testing.T, c aws.HTTPClient) *BatchClient {
	t.Helper()
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://sqs.test"), Credentials: testCreds},
		func(o *sqs.Options) { o.HTTPClient = c })
	bc, err := NewBatchClient(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	return bc
}

func input(bodies ...string) *sqs.SendMessageBatchInput {
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String("http://sqs.test/1/q-email")}
	for i, b := range bodies {
		in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(b)})
	}
	return in
}

// Entries SQS failed, entries it stored with another MD5 and entries the
// answer leaves out all come back as failed, the others not.
func TestBatchClientFailedEntries(t *testing.T) {
	t.Parallel()
	s := &scripted{sent: map[string]int{}, answer: func(entries []batchEntry, _ *int, out map[string]any) {
		ok := out["Successful"].([]map[string]any)
		ok[1]["MD5OfMessageBody"] = strings.Repeat("0", 32)       // corrupted on the way
		out["Successful"] = []map[string]any{ok[0], ok[1], ok[4]} // 3 missing
		out["Failed"] = []any{map[string]any{"Id": "2", "Code": "InternalError", "SenderFault": false, "Message": "try again"}}
	}}
	out, err := batchClient(t, s).SendMessageBatch(context.Background(), input("a", "b", "c", "d", "e"))
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, f := range out.Failed {
		codes[aws.ToString(f.Id)] = aws.ToString(f.Code)
		if f.SenderFault {
			t.Errorf("entry %s reported as the sender's fault", aws.ToString(f.Id))
		}
	}
	want := map[string]string{"1": "MD5Mismatch", "2": "InternalError", "3": "Missing"}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("failed entries %v, want %v", codes, want)
	}
}

// A body SQS stored with another MD5 is sent again through the sink, and
// only it.
func TestBatchClientResendsMismatch(t *testing.T) {
	t.Parallel()
	ls := lines(25, 0)
	var once sync.Once
	s := &scripted{sent: map[string]int{}}
	s.answer = func(entries []batchEntry, _ *int, out map[string]any) {
		for i, e := range entries {
			if e.MessageBody == ls[7] {
				once.Do(func() {
					out["Successful"].([]map[string]any)[i]["MD5OfMessageBody"] = "ffffffffffffffffffffffffffffffff"
				})
			}
		}
	}
	sink, err := New(Config{Client: batchClient(t, s), URLPattern: "http://sqs.test/1/q-{channel}", Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Publish(context.Background(), sinktest.BatchFromLines(job.ChannelEmail, ls)); err != nil {
		t.Fatal(err)
	}
	for i, l := range ls {
		want := 1
		if i == 7 {
			want = 2
		}
		if s.sent[l] != want {
			t.Errorf("message %d sent %d times, want %d", i, s.sent[l], want)
		}
	}
}

// An error answer is an error naming the status, the request id, and
// SQS's code (the query protocol's when the answer has one) and message;
// an answer that is not JSON, or too large, is an error too.
func TestBatchClientErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		s      *scripted
		code   string
		inText []string
	}{
		{"queue gone", &scripted{header: http.Header{"X-Amzn-Query-Error": {"AWS.SimpleQueueService.NonExistentQueue;Sender"}},
			body:   `{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}`,
			answer: func(_ []batchEntry, st *int, _ map[string]any) { *st = http.StatusBadRequest }},
			"AWS.SimpleQueueService.NonExistentQueue", []string{"HTTP 400", "req-1", "does not exist"}},
		{"throttled", &scripted{body: `{"__type":"com.amazonaws.sqs#RequestThrottled","message":"slow down"}`,
			answer: func(_ []batchEntry, st *int, _ map[string]any) { *st = http.StatusBadRequest }},
			"RequestThrottled", []string{"slow down"}},
		{"5xx without a body", &scripted{body: " ", answer: func(_ []batchEntry, st *int, _ map[string]any) { *st = http.StatusServiceUnavailable }},
			"Service Unavailable", []string{"HTTP 503"}},
		{"not JSON", &scripted{body: "<html>proxy</html>"}, "", []string{"decode the answer"}},
		{"too large", &scripted{body: `{"Successful":[],"Failed":[],"x":"` + strings.Repeat("x", maxAnswerBytes) + `"}`}, "", []string{"answer over"}},
	}
	for _, c := range cases {
		c.s.sent = map[string]int{}
		_, err := batchClient(t, c.s).SendMessageBatch(context.Background(), input("a"))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		var api smithy.APIError
		switch {
		case c.code != "" && (!errors.As(err, &api) || api.ErrorCode() != c.code):
			t.Errorf("%s: %v, want code %s", c.name, err, c.code)
		case c.code == "" && errors.As(err, &api):
			t.Errorf("%s: %v is an API error", c.name, err)
		}
		for _, s := range c.inText {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", c.name, err, s)
			}
		}
	}
}
