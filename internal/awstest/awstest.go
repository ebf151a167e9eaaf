// Package awstest runs the AWS APIs segpub uses in-process, with
// github.com/sivchari/kumo, for tests: real protocol peers, no hand-written
// fakes.
package awstest

import (
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/sivchari/kumo"
)

// One emulator per test binary: kumo's services are process-wide singletons
// that every new server rewires without a lock, so servers started by
// parallel tests race (go test -race reports it) while sharing their state
// anyway. Tests isolate themselves by unique queue, table and bucket names.
var (
	serverOnce sync.Once
	serverURL  string
)

// Config returns an AWS configuration pointed at the package's emulator,
// starting it on first use. It lives until the test binary exits.
func Config(t testing.TB) aws.Config {
	t.Helper()
	serverOnce.Do(func() { serverURL = kumo.NewServer().URL })
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(serverURL),
	}
}
