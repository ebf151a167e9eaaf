package job

import (
	"strings"
	"testing"
)

// A job over the cap is rejected after reading one byte more than the cap,
// before any parsing.
func TestReadLimited(t *testing.T) {
	t.Parallel()
	r := strings.NewReader(strings.Repeat("x", 1000))
	_, err := ReadLimited(r, 100)
	if !IsRejection(err) || !strings.Contains(err.Error(), "over the limit of 100 bytes (SEGPUB_MAX_JOB_BYTES)") {
		t.Fatalf("got %v", err)
	}
	if read := 1000 - r.Len(); read != 101 {
		t.Fatalf("read %d bytes, want 101", read)
	}
	data, err := ReadLimited(strings.NewReader(`{"a":1}`), 7)
	if err != nil || string(data) != `{"a":1}` {
		t.Fatalf("at the cap: %q %v", data, err)
	}
	if err := CheckSize(8, 7); !IsRejection(err) || err.Error() != "the job is 8 bytes, over the limit of 7 (SEGPUB_MAX_JOB_BYTES)" {
		t.Fatalf("CheckSize: %v", err)
	}
	if err := CheckSize(7, 7); err != nil {
		t.Fatalf("CheckSize at the cap: %v", err)
	}
}
