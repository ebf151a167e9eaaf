package jssink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/publish"
)

// BenchmarkPublishEmbedded measures the sink alone: batches of 1000
// messages of about 1 KiB (the size of a push message with personalization)
// into an embedded, file-backed JetStream, as fast-ingest batches and with
// one acknowledgement per message.
//
//	go test ./internal/sink/jssink -run '^$' -bench PublishEmbedded -benchtime 300x
func BenchmarkPublishEmbedded(b *testing.B) {
	b.Run("batch", func(b *testing.B) { benchmarkPublishEmbedded(b, false) })
	b.Run("each", func(b *testing.B) { benchmarkPublishEmbedded(b, true) })
}

func benchmarkPublishEmbedded(b *testing.B, perMessage bool) {
	c := &natsjs.Connector{DefaultDir: b.TempDir()}
	defer c.Close()
	conn, err := c.Connect(context.Background(), "embedded:")
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(context.Background(), Config{Conn: conn, Stream: "BENCH", Subject: "bench.{channel}", PerMessageAcks: perMessage})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"campaign_id":"bench_push","channel":"push_notification","personalization":{"user":{` + strings.Repeat(`"k":"vvvvvvvvvvvvvvvvvvvv",`, 36) + `"z":1}}}`)
	b.SetBytes(int64(len(body)) * 1000)
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		batch := &publish.Batch{Channel: job.ChannelPush}
		for k := 0; k < 1000; k++ {
			sum := sha256.Sum256(fmt.Appendf(nil, "%d", n))
			n++
			batch.Messages = append(batch.Messages, publish.Message{Key: []byte(hex.EncodeToString(sum[:])), Body: body})
		}
		if err := s.Publish(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}
