package bench

import (
	"context"
	"testing"
	"time"
)

// The SDK talks to the endpoint as to SQS (the client checks every body's
// MD5), and the endpoint counts entries and distinct keys.
func TestSQSEndpoint(t *testing.T) {
	t.Parallel()
	e, err := StartSQSEndpoint(time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rate, err := SDKCeiling(context.Background(), e.URL, 1000, 300, 8)
	if err != nil {
		t.Fatal(err)
	}
	c := e.Counts()
	if c.Entries != 1000 || c.Distinct != 1000 || c.Requests != 100 || rate <= 0 {
		t.Fatalf("counts %+v, rate %v", c, rate)
	}
	if c.Bytes != 300*1000 {
		t.Fatalf("%d bytes for 1000 messages of 300", c.Bytes)
	}
	if c := e.Counts(); c.Entries != 0 || c.Distinct != 0 {
		t.Fatalf("counts not reset: %+v", c)
	}
}
