package s3csv

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/segpub/segpub/internal/awstest"
	"github.com/segpub/segpub/internal/job"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := s3.NewFromConfig(awstest.Config(t), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("audiences")}); err != nil {
		t.Fatal(err)
	}
	content := "email,name\n" + strings.Repeat("a@x.com,A\n", 50000)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("audiences"), Key: aws.String("big/list.csv"), Body: strings.NewReader(content)}); err != nil {
		t.Fatal(err)
	}
	o := &Opener{Client: client}
	rc, err := o.Open(ctx, "s3://audiences/big/list.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != content {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	for _, url := range []string{"s3://audiences/missing.csv", "s3://no-such-bucket/x.csv", "s3://audiences"} {
		if _, err := o.Open(ctx, url); !job.IsRejection(err) {
			t.Errorf("%s: want a rejection, got %v", url, err)
		}
	}
}

// An object over the size cap is refused before its body is read.
func TestOpenOverCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := s3.NewFromConfig(awstest.Config(t), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("capped")}); err != nil {
		t.Fatal(err)
	}
	content := "email\n" + strings.Repeat("a@x.com\n", 1000)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("capped"), Key: aws.String("list.csv"), Body: strings.NewReader(content)}); err != nil {
		t.Fatal(err)
	}
	_, err := (&Opener{Client: client, MaxBytes: 1000}).Open(ctx, "s3://capped/list.csv")
	if !job.IsRejection(err) || !strings.Contains(err.Error(), "SEGPUB_CSV_MAX_BYTES") || !strings.HasPrefix(err.Error(), "campaign.audience.url: ") {
		t.Fatalf("over the cap: got %v", err)
	}
	rc, err := (&Opener{Client: client, MaxBytes: int64(len(content))}).Open(ctx, "s3://capped/list.csv")
	if err != nil {
		t.Fatalf("at the cap: %v", err)
	}
	rc.Close()
}
