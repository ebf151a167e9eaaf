package endpoint

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/segpub/segpub/internal/events"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/msgstore/dynamostore"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue"
	"github.com/segpub/segpub/internal/queue/sqsqueue"
	"github.com/segpub/segpub/internal/s3csv"
	"github.com/segpub/segpub/internal/sink/sqssink"
)

// awsOpener opens Amazon endpoints (SQS, DynamoDB, Kinesis, S3) with the
// default AWS configuration (environment, shared files, the ECS task
// role), loaded once on first use.
type awsOpener struct {
	log  *slog.Logger
	once sync.Once
	cfg  aws.Config
	err  error
}

// NewAWS returns the AWSOpener of this build: Amazon's SDK with the default
// configuration.
func NewAWS(log *slog.Logger) AWSOpener { return &awsOpener{log: log} }

func (o *awsOpener) config(ctx context.Context) (aws.Config, error) {
	o.once.Do(func() { o.cfg, o.err = config.LoadDefaultConfig(ctx) })
	if o.err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", o.err)
	}
	return o.cfg, nil
}

// sqsClient returns a client and the plain queue URL. An sqs+http(s)://
// URL also sets the endpoint (an emulator or a VPC endpoint).
func (o *awsOpener) sqsClient(ctx context.Context, raw string, extra ...func(*sqs.Options)) (*sqs.Client, string, error) {
	cfg, err := o.config(ctx)
	if err != nil {
		return nil, "", err
	}
	plain := strings.TrimPrefix(raw, "sqs+")
	var opts []func(*sqs.Options)
	if plain != raw {
		u, err := url.Parse(plain)
		if err != nil {
			return nil, "", fmt.Errorf("parse SQS URL %q: %w", raw, err)
		}
		endpoint := u.Scheme + "://" + u.Host
		opts = append(opts, func(o *sqs.Options) { o.BaseEndpoint = aws.String(endpoint) })
	}
	return sqs.NewFromConfig(cfg, append(opts, extra...)...), plain, nil
}

func (o *awsOpener) Queue(ctx context.Context, raw string, visibility time.Duration) (queue.Queue, error) {
	client, plain, err := o.sqsClient(ctx, raw)
	if err != nil {
		return nil, err
	}
	return sqsqueue.New(sqsqueue.Config{Client: client, URL: plain, Visibility: visibility})
}

func (o *awsOpener) Sink(ctx context.Context, pattern string, maxInFlight int) (publish.Sink, error) {
	// SendMessageBatch carries up to 10 messages.
	inFlight := (maxInFlight + 9) / 10
	client, plain, err := o.sqsClient(ctx, pattern, sqssink.SinkOptions(inFlight))
	if err != nil {
		return nil, err
	}
	batch, err := sqssink.NewBatchClient(ctx, client)
	if err != nil {
		return nil, err
	}
	return sqssink.New(sqssink.Config{Client: batch, URLPattern: plain, InFlight: inFlight})
}

func (o *awsOpener) Store(ctx context.Context, table string) (msgstore.Store, error) {
	cfg, err := o.config(ctx)
	if err != nil {
		return nil, err
	}
	return dynamostore.New(dynamodb.NewFromConfig(cfg), table)
}

func (o *awsOpener) Kinesis(ctx context.Context) (events.KinesisAPI, error) {
	cfg, err := o.config(ctx)
	if err != nil {
		return nil, err
	}
	return kinesis.NewFromConfig(cfg), nil
}

// CSVOpener opens CSV audiences: file:// with files, s3:// from S3 within
// the same size cap. Every command that runs jobs (serve's worker, the
// console's preview, publish, size, explain, why) opens them with it.
func CSVOpener(log *slog.Logger, files publish.FileOpener) func(context.Context, string) (io.ReadCloser, error) {
	o := &awsOpener{log: log}
	return func(ctx context.Context, raw string) (io.ReadCloser, error) {
		if !strings.HasPrefix(raw, "s3://") {
			return files.Open(ctx, raw)
		}
		cfg, err := o.config(ctx)
		if err != nil {
			return nil, err
		}
		return (&s3csv.Opener{Client: s3.NewFromConfig(cfg), MaxBytes: files.MaxBytes}).Open(ctx, raw)
	}
}
