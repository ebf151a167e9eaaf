package sqsqueue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/segpub/segpub/internal/awstest"
	"github.com/segpub/segpub/internal/queue"
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

func receive(t *testing.T, q *Queue, within time.Duration) queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	d, err := q.Receive(ctx)
	if err != nil {
		return nil
	}
	return d
}

func TestSendReceiveAck(t *testing.T) {
	t.Parallel()
	q := newQueue(t, 30*time.Second, false)
	ctx := context.Background()
	if err := q.Send(ctx, []byte(`{"a":1}`), ""); err != nil {
		t.Fatal(err)
	}
	d := receive(t, q, 5*time.Second)
	if d == nil || string(d.Body()) != `{"a":1}` || d.Attempt() != 1 {
		t.Fatalf("received %+v", d)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, q, 2*time.Second); d != nil {
		t.Fatal("acknowledged message came back")
	}
	if err := q.Send(ctx, make([]byte, 101), ""); !errors.Is(err, queue.ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
}

// A nacked job comes back with its attempt counted.
func TestNack(t *testing.T) {
	t.Parallel()
	q := newQueue(t, 30*time.Second, false)
	ctx := context.Background()
	_ = q.Send(ctx, []byte("job"), "")
	d := receive(t, q, 5*time.Second)
	if err := d.Nack(ctx, 0); err != nil {
		t.Fatal(err)
	}
	d2 := receive(t, q, 5*time.Second)
	if d2 == nil || d2.Attempt() != 2 {
		t.Fatalf("redelivery: %+v", d2)
	}
}

// A job that runs longer than the visibility timeout stays with its worker
// while the worker extends it, and comes back when it stops extending.
func TestExtendBeyondVisibility(t *testing.T) {
	t.Parallel()
	q := newQueue(t, 2*time.Second, false)
	ctx := context.Background()
	_ = q.Send(ctx, []byte("long job"), "")
	d := receive(t, q, 5*time.Second)
	if d == nil {
		t.Fatal("nothing received")
	}
	other, _ := New(q.cfg) // a second worker on the same queue
	stolen := make(chan queue.Delivery, 1)
	go func() {
		rctx, cancel := context.WithTimeout(ctx, 6*time.Second)
		defer cancel()
		if d, err := other.Receive(rctx); err == nil {
			stolen <- d
		}
		close(stolen)
	}()
	for i := 0; i < 6; i++ { // 6 s of work, twice the visibility timeout
		time.Sleep(time.Second)
		if err := d.Extend(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if s, ok := <-stolen; ok && s != nil {
		t.Fatal("another worker received the job while it was being extended")
	}
	// Without extension it returns after the visibility timeout.
	d2 := receive(t, q, 6*time.Second)
	if d2 == nil || d2.Attempt() != 2 {
		t.Fatalf("after extensions stopped: %+v", d2)
	}
}

// FIFO queues drop a second send with the same de-duplication id.
func TestFIFODeduplication(t *testing.T) {
	t.Parallel()
	q := newQueue(t, 30*time.Second, true)
	ctx := context.Background()
	for range 2 {
		if err := q.Send(ctx, []byte("job"), "r-1"); err != nil {
			t.Fatal(err)
		}
	}
	d := receive(t, q, 5*time.Second)
	if d == nil {
		t.Fatal("nothing received")
	}
	_ = d.Ack(ctx)
	if d := receive(t, q, 2*time.Second); d != nil {
		t.Fatal("duplicate delivered")
	}
}
