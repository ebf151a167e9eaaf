package sqssink

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// BatchClient sends SendMessageBatch requests with an SQS client's
// settings (endpoint, credentials, HTTP client, region) but without the
// SDK's per-call machinery. A call through the SDK builds a middleware
// stack of some thirty steps, resolves the endpoint and copies every body
// once more to check its MD5; at the hundreds of requests per second a
// campaign sends, that was a third of the SDK's CPU per request, and the
// CPU is what limits a 2-core worker. The request is the one the SDK
// writes (the same JSON document and headers), signed by the SDK's SigV4
// signer; the answer's MD5s are checked as the SDK does.
//
// It makes one attempt per call: the sink retries, entry by entry. Other
// differences from the SDK client: an entry whose MD5 does not match, or
// that the answer does not mention, comes back as a failed entry (code
// MD5Mismatch or Missing) to be sent again, instead of failing the whole
// request; the clock is not corrected for skew.
type BatchClient struct {
	http     aws.HTTPClient
	creds    aws.CredentialsProvider
	signer   *v4.Signer
	endpoint url.URL
	headers  http.Header
	service  string
	region   string
}

// maxAnswerBytes bounds how much of an answer is read: a SendMessageBatch
// answer for 10 entries is a few KiB.
const maxAnswerBytes = 1 << 20

// NewBatchClient resolves the client's endpoint once and returns a
// BatchClient that sends to it.
func NewBatchClient(ctx context.Context, c *sqs.Client) (*BatchClient, error) {
	o := c.Options()
	if o.Credentials == nil {
		return nil, errors.New("sqssink: the SQS client has no credentials")
	}
	if o.HTTPClient == nil || o.EndpointResolverV2 == nil {
		return nil, errors.New("sqssink: the SQS client has no HTTP client or endpoint resolver")
	}
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, sqs.EndpointParameters{
		Region:       aws.String(o.Region),
		Endpoint:     o.BaseEndpoint,
		UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
	})
	if err != nil {
		return nil, fmt.Errorf("sqssink: resolve the SQS endpoint: %w", err)
	}
	b := &BatchClient{http: o.HTTPClient, creds: o.Credentials, signer: v4.NewSigner(), endpoint: ep.URI,
		headers: ep.Headers.Clone(), service: "sqs", region: o.Region}
	if !aws.IsCredentialsProvider(b.creds, (*aws.CredentialsCache)(nil)) {
		b.creds = aws.NewCredentialsCache(b.creds)
	}
	if name, ok := smithyhttp.GetSigV4SigningName(&ep.Properties); ok && name != "" {
		b.service = name
	}
	if region, ok := smithyhttp.GetSigV4SigningRegion(&ep.Properties); ok && region != "" {
		b.region = region
	}
	if b.endpoint.Path == "" {
		b.endpoint.Path = "/"
	}
	if b.headers == nil {
		b.headers = http.Header{}
	}
	b.headers.Set("Content-Type", "application/x-amz-json-1.0")
	b.headers.Set("X-Amz-Target", "AmazonSQS.SendMessageBatch")
	// SQS answers errors with its query-protocol codes as well.
	b.headers.Set("X-Amzn-Query-Mode", "true")
	b.headers.Set("User-Agent", "segpub")
	return b, nil
}

// answer is a SendMessageBatch answer.
type answer struct {
	Successful []struct {
		Id               string
		MessageId        string
		MD5OfMessageBody string
	}
	Failed []types.BatchResultErrorEntry
}

// SendMessageBatch sends in and returns the entries SQS did not accept in
// Failed; Successful is left empty (the sink does not read it). Per-call
// options are ignored: the client's settings were taken once, by
// NewBatchClient.
func (b *BatchClient) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if !plainBatch(in) {
		return nil, errors.New("sqssink: SendMessageBatch: an entry uses fields the batch client does not send")
	}
	body := appendBatch(make([]byte, 0, batchSize(in)), in)
	sum := sha256.Sum256(body)
	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           new(url.URL),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        b.headers.Clone(),
		Body:          io.NopCloser(bytes.NewReader(body)),
		GetBody:       func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
		ContentLength: int64(len(body)),
	}).WithContext(ctx)
	*req.URL = b.endpoint
	creds, err := b.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("SendMessageBatch: retrieve credentials: %w", err)
	}
	if err := b.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), b.service, b.region, time.Now().UTC()); err != nil {
		return nil, fmt.Errorf("SendMessageBatch: sign: %w", err)
	}
	res, err := b.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("SendMessageBatch: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("SendMessageBatch: read the answer: %w", err)
	}
	if len(raw) > maxAnswerBytes {
		return nil, fmt.Errorf("SendMessageBatch: answer over %d bytes", maxAnswerBytes)
	}
	if res.StatusCode != http.StatusOK {
		return nil, answerError(res, raw)
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("SendMessageBatch: decode the answer (HTTP %d, request id %s): %w", res.StatusCode, res.Header.Get("X-Amzn-Requestid"), err)
	}
	return &sqs.SendMessageBatchOutput{Failed: checkAnswer(in, &a)}, nil
}

// checkAnswer returns the answer's failed entries and, as failed entries
// too, those the answer reports with an MD5 other than their body's and
// those it does not mention: either way SQS may not hold the message as
// sent, and only these are sent again.
func checkAnswer(in *sqs.SendMessageBatchInput, a *answer) []types.BatchResultErrorEntry {
	failed := a.Failed
	var seen [10]bool // a request has at most 10 entries
	for _, f := range a.Failed {
		if i := entryIndex(in, aws.ToString(f.Id)); i >= 0 && i < len(seen) {
			seen[i] = true
		}
	}
	for _, s := range a.Successful {
		i := entryIndex(in, s.Id)
		if i < 0 || i >= len(seen) {
			continue
		}
		seen[i] = true
		body := *in.Entries[i].MessageBody
		sum := md5.Sum(unsafe.Slice(unsafe.StringData(body), len(body)))
		var hx [2 * md5.Size]byte
		hex.Encode(hx[:], sum[:])
		if !strings.EqualFold(string(hx[:]), s.MD5OfMessageBody) {
			failed = append(failed, types.BatchResultErrorEntry{Id: aws.String(s.Id), Code: aws.String("MD5Mismatch"), SenderFault: false,
				Message: aws.String(fmt.Sprintf("SQS stored a body with MD5 %q, the body sent has %s", s.MD5OfMessageBody, hx[:]))})
		}
	}
	for i := range in.Entries {
		if i < len(seen) && !seen[i] {
			failed = append(failed, types.BatchResultErrorEntry{Id: in.Entries[i].Id, Code: aws.String("Missing"), SenderFault: false,
				Message: aws.String("the answer does not mention the entry")})
		}
	}
	return failed
}

func entryIndex(in *sqs.SendMessageBatchInput, id string) int {
	for i := range in.Entries {
		if *in.Entries[i].Id == id {
			return i
		}
	}
	return -1
}

// answerError is the error of a non-200 answer: SQS's code (the query
// protocol's, as the SDK reports it, when the answer carries one) and
// message.
func answerError(res *http.Response, raw []byte) error {
	// encoding/json matches keys case-insensitively: "Message" and "Code"
	// land here too.
	var e struct {
		Type    string `json:"__type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(raw, &e)
	code := e.Code
	if code == "" {
		code = e.Type
	}
	if h := res.Header.Get("X-Amzn-Errortype"); code == "" && h != "" {
		code = h
	}
	// "com.amazonaws.sqs#QueueDoesNotExist" and "Code:..." forms.
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	code, _, _ = strings.Cut(code, ":")
	fault := smithy.FaultUnknown
	if q := res.Header.Get("X-Amzn-Query-Error"); q != "" {
		qcode, qfault, _ := strings.Cut(q, ";")
		code = qcode
		switch qfault {
		case "Sender":
			fault = smithy.FaultClient
		case "Receiver":
			fault = smithy.FaultServer
		}
	}
	if code == "" {
		code = http.StatusText(res.StatusCode)
	}
	return fmt.Errorf("SendMessageBatch: HTTP %d, request id %s: %w", res.StatusCode, res.Header.Get("X-Amzn-Requestid"),
		&smithy.GenericAPIError{Code: code, Message: e.Message, Fault: fault})
}
