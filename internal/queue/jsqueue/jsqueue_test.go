package jsqueue

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/queue"
	"github.com/segpub/segpub/internal/queue/queuetest"
)

var n atomic.Int64

func TestQueue(t *testing.T) {
	t.Parallel()
	// One embedded server for the package; each subtest has its own
	// stream.
	c := &natsjs.Connector{DefaultDir: t.TempDir()}
	t.Cleanup(c.Close)
	conn, err := c.Connect(context.Background(), "embedded:")
	if err != nil {
		t.Fatal(err)
	}
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		i := n.Add(1)
		cfg := Config{Conn: conn, Stream: fmt.Sprintf("Q%d", i), Subject: fmt.Sprintf("q.%d", i), AckWait: 2 * time.Second, MaxMessageBytes: 100}
		open := func(t *testing.T) *Queue {
			q, err := New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return q
		}
		return queuetest.Harness{
			Queue:      open(t),
			Consumer:   func(t *testing.T) queue.Queue { return open(t) },
			Visibility: cfg.AckWait,
			Dedup:      true, // Nats-Msg-Id within the stream's window
		}
	})
}
