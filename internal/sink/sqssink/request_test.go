package sqssink

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// capture answers every request with an empty SendMessageBatch result and
// keeps what was sent.
type capture struct {
	reqs   []*http.Request
	bodies [][]byte
}

func (c *capture) Do(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	c.bodies = append(c.bodies, b)
	c.reqs = append(c.reqs, r.Clone(context.Background()))
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body: io.NopCloser(strings.NewReader(`{"Successful":[],"Failed":[]}`)), Request: r}, nil
}

var testCreds = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")

// sent returns the request the SDK, or the BatchClient, sends for in.
func sent(t *testing.T, batch bool, in *sqs.SendMessageBatchInput) (map[string]any, []byte, *http.Request) {
	t.Helper()
	c := &capture{}
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://sqs.test"), Credentials: testCreds},
		PoolOptions(4), func(o *sqs.Options) { o.HTTPClient = c })
	var api API = client
	if batch {
		bc, err := NewBatchClient(context.Background(), client)
		if err != nil {
			t.Fatal(err)
		}
		api = bc
	}
	if _, err := api.SendMessageBatch(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if len(c.bodies) != 1 {
		t.Fatalf("%d requests", len(c.bodies))
	}
	var doc map[string]any
	if err := json.Unmarshal(c.bodies[0], &doc); err != nil {
		t.Fatalf("request is not JSON: %v\n%s", err, c.bodies[0])
	}
	return doc, c.bodies[0], c.reqs[0]
}

// checkSignature signs again, as SQS does on receipt, the request as it
// was sent (its signed headers as they arrived, its body as it arrived)
// and compares the signatures: a body or header changed after signing
// fails here as it would fail at SQS.
func checkSignature(t *testing.T, r *http.Request, body []byte) {
	t.Helper()
	auth := r.Header.Get("Authorization")
	_, signed, ok := strings.Cut(auth, "SignedHeaders=")
	if !ok {
		t.Fatalf("no SignedHeaders in Authorization %q", auth)
	}
	signed, _, _ = strings.Cut(signed, ",")
	_, scope, _ := strings.Cut(auth, "Credential=")
	scope, _, _ = strings.Cut(scope, ",")
	if parts := strings.Split(scope, "/"); len(parts) != 5 || parts[2] != "us-east-1" || parts[3] != "sqs" {
		t.Fatalf("credential scope %q, want region us-east-1 and service sqs", scope)
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("X-Amz-Date: %v", err)
	}
	again, err := http.NewRequest(r.Method, r.URL.String(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	again.Host = r.Host
	for _, h := range strings.Split(signed, ";") {
		switch h {
		case "host", "content-length":
			continue // from the request line and ContentLength
		}
		if r.Header.Values(h) == nil {
			t.Fatalf("signed header %s was not sent", h)
		}
		again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	again.ContentLength = int64(len(body))
	sum := sha256.Sum256(body)
	creds, _ := testCreds.Retrieve(context.Background())
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), "sqs", "us-east-1", when); err != nil {
		t.Fatal(err)
	}
	if got := again.Header.Get("Authorization"); got != auth {
		t.Fatalf("signature does not verify:\nsent     %s\nexpected %s", auth, got)
	}
}

// The BatchClient's SendMessageBatch requests say what the SDK's say: the
// same JSON document, path and protocol headers, for bodies that need
// every kind of escaping and for FIFO fields, with a signature that
// verifies; entries with fields it does not write are refused.
func TestBatchRequestsMatchSDK(t *testing.T) {
	t.Parallel()
	bodies := []string{
		`{"idempotency_key":"ab","to":"x"}`,
		"quotes \" backslash \\ tab \t newline \n cr \r nul \x00 unit \x1f del \x7f",
		"한국어 ünïcödé 😀 \u2028 \u2029 \ufffe \uffff",
		strings.Repeat("plain ascii ", 100),
		"",
	}
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String("http://sqs.test/1/q-push")}
	for i, b := range bodies {
		in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{Id: aws.String(string(rune('0' + i))), MessageBody: aws.String(b)})
	}
	fifo := &sqs.SendMessageBatchInput{QueueUrl: aws.String("http://sqs.test/1/q-push.fifo"), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("0"), MessageBody: aws.String(`{"a":"\"b\""}`), MessageDeduplicationId: aws.String("k1"), MessageGroupId: aws.String("g0a")},
	}}
	for name, in := range map[string]*sqs.SendMessageBatchInput{"standard": in, "fifo": fifo} {
		sdk, sdkRaw, sdkReq := sent(t, false, in)
		own, raw, ownReq := sent(t, true, in)
		if !reflect.DeepEqual(sdk, own) {
			t.Errorf("%s: the batch client sent\n%v\nthe SDK\n%v", name, own, sdk)
		}
		if ownReq.Method != sdkReq.Method || ownReq.URL.String() != sdkReq.URL.String() || ownReq.Host != sdkReq.Host {
			t.Errorf("%s: %s %s (host %q), the SDK %s %s (host %q)", name, ownReq.Method, ownReq.URL, ownReq.Host, sdkReq.Method, sdkReq.URL, sdkReq.Host)
		}
		for _, h := range []string{"X-Amz-Target", "Content-Type", "X-Amzn-Query-Mode"} {
			if sdkReq.Header.Get(h) != ownReq.Header.Get(h) {
				t.Errorf("%s: header %s %q, the SDK's %q", name, h, ownReq.Header.Get(h), sdkReq.Header.Get(h))
			}
		}
		checkSignature(t, sdkReq, sdkRaw)
		checkSignature(t, ownReq, raw)
		if name == "standard" && !bytes.Contains(raw, []byte(`\"idempotency_key\":\"ab\"`)) {
			t.Errorf("body not escaped as expected: %s", raw)
		}
	}
	delayed := &sqs.SendMessageBatchInput{QueueUrl: aws.String("http://sqs.test/1/q-push"), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("0"), MessageBody: aws.String("x"), DelaySeconds: 5},
	}}
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://sqs.test"), Credentials: testCreds},
		func(o *sqs.Options) { o.HTTPClient = &capture{} })
	bc, err := NewBatchClient(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bc.SendMessageBatch(context.Background(), delayed); err == nil || !strings.Contains(err.Error(), "fields") {
		t.Errorf("an entry with DelaySeconds: %v, want a refusal", err)
	}
}

// accepting answers every SendMessageBatch with the same answer: all
// entries accepted, with the MD5 of body.
type accepting struct{ answer string }

func newAccepting(entries int, body string) accepting {
	sum := md5.Sum([]byte(body))
	var b strings.Builder
	b.WriteString(`{"Successful":[`)
	for i := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"Id":"%d","MessageId":"5fea7756-0ea4-451a-a703-a558b933e27%d","MD5OfMessageBody":"%x"}`, i, i, sum)
	}
	b.WriteString(`],"Failed":[]}`)
	return accepting{b.String()}
}

func (a accepting) Do(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body: io.NopCloser(strings.NewReader(a.answer)), Request: r}, nil
}

// The client's CPU per 10-entry request of push messages like segpub's,
// answered as SQS answers: through the SDK, and through the BatchClient.
func BenchmarkSendMessageBatch(b *testing.B) {
	body := `{"idempotency_key":"0f3c8e2a9b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f","campaign_id":"camp_001","channel":"push",` +
		`"notifly_user_id":"u_000123456","notifly_device_id":"d_000123456_0","external_user_id":"ext_123456","push_token":"` +
		strings.Repeat("f", 152) + `","platform":"android","send_at":"2026-12-06T09:00:00Z","variant":null,"properties":{"name":"Kim","tier":"gold"}}`
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String("http://sqs.test/1/q-push")}
	for i := range 10 {
		in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{Id: aws.String(string(rune('0' + i))), MessageBody: aws.String(body)})
	}
	answer := newAccepting(10, body)
	for _, c := range []struct {
		name  string
		opts  func(*sqs.Options)
		batch bool
	}{{"sdk", PoolOptions(4), false}, {"batchclient", PoolOptions(4), true}} {
		b.Run(c.name, func(b *testing.B) {
			client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://sqs.test"),
				Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}, c.opts, func(o *sqs.Options) { o.HTTPClient = answer })
			var api API = client
			if c.batch {
				bc, err := NewBatchClient(context.Background(), client)
				if err != nil {
					b.Fatal(err)
				}
				api = bc
			}
			b.SetBytes(int64(10 * len(body)))
			b.ReportAllocs()
			for b.Loop() {
				out, err := api.SendMessageBatch(context.Background(), in)
				if err != nil {
					b.Fatal(err)
				}
				if len(out.Failed) > 0 {
					b.Fatalf("failed: %s", aws.ToString(out.Failed[0].Code))
				}
			}
		})
	}
}
