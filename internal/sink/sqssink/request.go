package sqssink

import (
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/segpub/segpub/internal/message"
)

// plainBatch reports whether every entry uses only the fields the sink
// sets: the only ones appendBatch writes.
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
// whose entries passed plainBatch: the document the SDK writes. A channel
// message is JSON, so nearly every byte of a request is a message body
// escaped as a JSON string; the SDK's generic serializer escapes a rune at
// a time, which profiled as the largest single cost of an SQS run, while
// message.AppendBytes copies plain ASCII a word at a time.
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
