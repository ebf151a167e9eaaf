package cli

import (
	"context"
	"io"
	"log/slog"

	"github.com/segpub/segpub/internal/endpoint"
	"github.com/segpub/segpub/internal/publish"
)

// newAWSOpener opens SQS and DynamoDB endpoints.
func newAWSOpener(_ *slog.Logger) endpoint.AWSOpener { return nil }

// openCSV opens CSV audiences.
func openCSV(_ context.Context, _ *slog.Logger) func(context.Context, string) (io.ReadCloser, error) {
	return publish.OpenFile
}
