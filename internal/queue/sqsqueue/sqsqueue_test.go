package sqsqueue

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/segpub/segpub/internal/awstest"
	"github.com/segpub/segpub/internal/queue"
	"github.com/segpub/segpub/internal/queue/queuetest"
)

var n atomic.Int64

func newQueue(t *testing.T, visibility time.Duration, fifo bool) *Queue {
	t.Helper()
	client := sqs.NewFromConfig(awstest.Config(t))
	name := fmt.Sprintf("jobs-%d", n.Add(1))
	attrs := map[string]string{}
	if fifo {
		name += ".fifo"
		attrs["FifoQueue"] = "true"
	}
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	q, err := New(Config{Client: client, URL: aws.ToString(out.QueueUrl), Visibility: visibility, WaitTime: time.Second, MaxMessageBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func harness(fifo bool) func(t *testing.T) queuetest.Harness {
	return func(t *testing.T) queuetest.Harness {
		q := newQueue(t, 2*time.Second, fifo)
		return queuetest.Harness{
			Queue: q,
			Consumer: func(t *testing.T) queue.Queue {
				other, err := New(q.cfg)
				if err != nil {
					t.Fatal(err)
				}
				return other
			},
			Visibility: 2 * time.Second,
			// Only FIFO queues drop a second send with the same
			// de-duplication id.
			Dedup: fifo,
		}
	}
}

func TestQueue(t *testing.T) {
	t.Parallel()
	t.Run("Standard", func(t *testing.T) {
		t.Parallel()
		queuetest.Run(t, harness(false))
	})
	t.Run("FIFO", func(t *testing.T) {
		t.Parallel()
		queuetest.Run(t, harness(true))
	})
}
