package sqssink

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// capture answers every request with an empty SendMessageBatch result and
// keeps what was sent.
type capture struct {
	bodies  [][]byte
	headers []http.Header
}

func (c *capture) Do(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	c.bodies = append(c.bodies, b)
	c.headers = append(c.headers, r.Header.Clone())
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body: io.NopCloser(strings.NewReader(`{"Successful":[],"Failed":[]}`)), Request: r}, nil
}

func sent(t *testing.T, withSink bool, in *sqs.SendMessageBatchInput) (map[string]any, []byte, http.Header) {
	t.Helper()
	c := &capture{}
	opts := sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://sqs.test"),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
	var fns []func(*sqs.Options)
	if withSink {
		fns = append(fns, ClientOptions(4))
	}
	fns = append(fns, func(o *sqs.Options) { o.HTTPClient = c })
	if _, err := sqs.New(opts, fns...).SendMessageBatch(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if len(c.bodies) != 1 {
		t.Fatalf("%d requests", len(c.bodies))
	}
	var doc map[string]any
	if err := json.Unmarshal(c.bodies[0], &doc); err != nil {
		t.Fatalf("request is not JSON: %v\n%s", err, c.bodies[0])
	}
	return doc, c.bodies[0], c.headers[0]
}

// The sink's SendMessageBatch requests say what the SDK's say: the same
// JSON document and the same protocol headers, for bodies that need every
// kind of escaping, FIFO fields, and entries the sink hands back to the
// SDK's serializer.
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
	delayed := &sqs.SendMessageBatchInput{QueueUrl: aws.String("http://sqs.test/1/q-push"), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("0"), MessageBody: aws.String("x"), DelaySeconds: 5},
	}}
	for name, in := range map[string]*sqs.SendMessageBatchInput{"standard": in, "fifo": fifo, "other fields": delayed} {
		sdk, _, sdkH := sent(t, false, in)
		own, raw, ownH := sent(t, true, in)
		if !reflect.DeepEqual(sdk, own) {
			t.Errorf("%s: the sink sent\n%v\nthe SDK\n%v", name, own, sdk)
		}
		for _, h := range []string{"X-Amz-Target", "Content-Type", "X-Amzn-Query-Mode"} {
			if sdkH.Get(h) != ownH.Get(h) {
				t.Errorf("%s: header %s %q, the SDK's %q", name, h, ownH.Get(h), sdkH.Get(h))
			}
		}
		if name == "standard" && !bytes.Contains(raw, []byte(`\"idempotency_key\":\"ab\"`)) {
			t.Errorf("body not escaped as expected: %s", raw)
		}
	}
}

// discard answers every SendMessageBatch as the capture does, keeping
// nothing.
type discard struct{}

func (discard) Do(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body: io.NopCloser(strings.NewReader(`{"Successful":[],"Failed":[]}`)), Request: r}, nil
}

// The client's CPU per 10-entry request of push messages like segpub's,
// through the SDK's serializer and through the sink's.
func BenchmarkSendMessageBatch(b *testing.B) {
	body := `{"idempotency_key":"0f3c8e2a9b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f","campaign_id":"camp_001","channel":"push",` +
		`"notifly_user_id":"u_000123456","notifly_device_id":"d_000123456_0","external_user_id":"ext_123456","push_token":"` +
		strings.Repeat("f", 152) + `","platform":"android","send_at":"2026-12-06T09:00:00Z","variant":null,"properties":{"name":"Kim","tier":"gold"}}`
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String("http://sqs.test/1/q-push")}
	for i := range 10 {
		in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{Id: aws.String(string(rune('0' + i))), MessageBody: aws.String(body)})
	}
	for _, c := range []struct {
		name string
		opts func(*sqs.Options)
	}{{"sdk", PoolOptions(4)}, {"sink", ClientOptions(4)}} {
		b.Run(c.name, func(b *testing.B) {
			client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://sqs.test"),
				Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}, c.opts, func(o *sqs.Options) { o.HTTPClient = discard{} })
			b.SetBytes(int64(10 * len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.SendMessageBatch(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
