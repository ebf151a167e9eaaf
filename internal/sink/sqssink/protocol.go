package sqssink

import (
	"bytes"
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/segpub/segpub/internal/message"
)

// batchProtocol writes SendMessageBatch requests itself and leaves every
// other operation, and every response, to the SDK's protocol. A channel
// message is JSON, so nearly every byte of a request is a message body
// escaped as a JSON string; the SDK's generic serializer escapes a rune at
// a time, which profiled as the largest single cost of an SQS run, while
// message.AppendBytes copies plain ASCII a word at a time. The request is
// the same JSON document (the SDK's own protocol sets method, path and
// headers), so SigV4, retries and the MD5 check of the answer are the
// SDK's as before.
type batchProtocol struct {
	smithyhttp.ClientProtocol
}

func (p batchProtocol) SerializeRequest(ctx context.Context, op *smithy.OperationSchema, in smithy.Serializable, req *smithyhttp.Request) error {
	b, ok := in.(*sqs.SendMessageBatchInput)
	if !ok || !plainBatch(b) {
		return p.ClientProtocol.SerializeRequest(ctx, op, in, req)
	}
	// Headers, method and path as the SDK sets them for this operation.
	if err := p.ClientProtocol.SerializeRequest(ctx, op, &sqs.SendMessageBatchInput{}, req); err != nil {
		return err
	}
	body := appendBatch(make([]byte, 0, batchSize(b)), b)
	sreq, err := req.SetStream(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("set SendMessageBatch body: %w", err)
	}
	*req = *sreq
	return nil
}

// plainBatch reports whether every entry uses only the fields the sink
// sets: anything else goes through the SDK's serializer unchanged.
func plainBatch(b *sqs.SendMessageBatchInput) bool {
	if b.QueueUrl == nil {
		return false
	}
	for i := range b.Entries {
		e := &b.Entries[i]
		if e.Id == nil || e.MessageBody == nil || e.DelaySeconds != 0 || e.MessageAttributes != nil || e.MessageSystemAttributes != nil {
			return false
		}
	}
	return true
}

// batchSize is an upper bound of a request's length when no byte needs
// more than 2 bytes of escaping, which is nearly always; append grows the
// buffer otherwise.
func batchSize(b *sqs.SendMessageBatchInput) int {
	n := 64 + len(*b.QueueUrl)
	for i := range b.Entries {
		e := &b.Entries[i]
		n += 128 + len(*e.Id) + len(*e.MessageBody)*9/8
		if e.MessageDeduplicationId != nil {
			n += len(*e.MessageDeduplicationId)
		}
		if e.MessageGroupId != nil {
			n += len(*e.MessageGroupId)
		}
	}
	return n
}

// appendBatch appends the JSON document of a SendMessageBatch request
// whose entries passed plainBatch.
func appendBatch(buf []byte, b *sqs.SendMessageBatchInput) []byte {
	buf = append(buf, `{"Entries":[`...)
	for i := range b.Entries {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendEntry(buf, &b.Entries[i])
	}
	buf = append(buf, `],"QueueUrl":`...)
	buf = message.AppendString(buf, *b.QueueUrl)
	return append(buf, '}')
}

func appendEntry(buf []byte, e *types.SendMessageBatchRequestEntry) []byte {
	buf = append(buf, `{"Id":`...)
	buf = message.AppendString(buf, *e.Id)
	buf = append(buf, `,"MessageBody":`...)
	buf = message.AppendString(buf, *e.MessageBody)
	if e.MessageDeduplicationId != nil {
		buf = append(buf, `,"MessageDeduplicationId":`...)
		buf = message.AppendString(buf, *e.MessageDeduplicationId)
	}
	if e.MessageGroupId != nil {
		buf = append(buf, `,"MessageGroupId":`...)
		buf = message.AppendString(buf, *e.MessageGroupId)
	}
	return append(buf, '}')
}
