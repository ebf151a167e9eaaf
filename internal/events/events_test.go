package events

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/segpub/segpub/internal/awstest"
)

func TestFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.ndjson")
	f, err := NewFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"started", "completed"} {
		if err := f.Emit(context.Background(), Event{Type: typ, RequestID: "r1", At: time.Unix(0, 0).UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var e Event
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &e) != nil || e.Type != "completed" || e.RequestID != "r1" {
		t.Fatalf("file: %q", data)
	}
}

func TestKinesis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := kinesis.NewFromConfig(awstest.Config(t))
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("runs"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	k := NewKinesis(client, "runs")
	if err := k.Emit(ctx, Event{Type: "started", RequestID: "r-9", At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	desc, err := client.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("runs")})
	if err != nil {
		t.Fatal(err)
	}
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("runs"),
		ShardId: desc.StreamDescription.Shards[0].ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	var e Event
	if len(recs.Records) != 1 || json.Unmarshal(recs.Records[0].Data, &e) != nil || e.RequestID != "r-9" || aws.ToString(recs.Records[0].PartitionKey) != "r-9" {
		t.Fatalf("records %+v", recs.Records)
	}
}
