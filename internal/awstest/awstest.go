// Package awstest runs the AWS APIs segpub uses in-process, with
// github.com/sivchari/kumo, for tests: real protocol peers, no hand-written
// fakes.
package awstest

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/sivchari/kumo"
)

// Config starts an emulator for the test and returns an AWS configuration
// pointed at it.
func Config(t testing.TB) aws.Config {
	t.Helper()
	srv := kumo.NewServer()
	t.Cleanup(srv.Close)
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(srv.URL),
	}
}
