// Package s3csv opens s3:// CSV audiences as a stream: the engine reads the
// object's body as S3 sends it and never holds the file whole.
package s3csv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/segpub/segpub/internal/job"
)

// API is the part of the S3 client the opener uses.
type API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Opener opens s3:// URLs.
type Opener struct {
	Client API
	// MaxBytes, when set, rejects larger objects before their body is
	// read (SEGPUB_CSV_MAX_BYTES; the engine also stops reading there).
	MaxBytes int64
}

// Open streams an object. A missing bucket or object rejects the job.
func (o *Opener) Open(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return nil, job.Rejectf("campaign.audience.url", "not an s3://bucket/key URL: %q", rawURL)
	}
	out, err := o.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(u.Host), Key: aws.String(strings.TrimPrefix(u.Path, "/"))})
	if err != nil {
		var nsk *types.NoSuchKey
		var nsb *types.NoSuchBucket
		var api smithy.APIError
		if errors.As(err, &nsk) || errors.As(err, &nsb) || (errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NoSuchBucket" || api.ErrorCode() == "NotFound")) {
			return nil, job.Rejectf("campaign.audience.url", "no such object: %s", rawURL)
		}
		return nil, fmt.Errorf("get %s: %w", rawURL, err)
	}
	if n := aws.ToInt64(out.ContentLength); o.MaxBytes > 0 && n > o.MaxBytes {
		out.Body.Close()
		return nil, job.Rejectf("campaign.audience.url", "%s: %d bytes, over the limit of %d (SEGPUB_CSV_MAX_BYTES)", rawURL, n, o.MaxBytes)
	}
	return out.Body, nil
}
