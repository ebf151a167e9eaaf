package job

import (
	"io"
)

// DefaultMaxJobBytes is the largest job accepted, inline or behind a claim
// check (SEGPUB_MAX_JOB_BYTES). Parsing holds several copies of a job (the
// raw bytes, decoded values, the audience's id list), about six times its
// size in all: 32 MiB keeps two concurrent jobs far below the 2 GB task and
// still carries a user_ids list of a million ids.
const DefaultMaxJobBytes int64 = 32 << 20

// CheckSize rejects a job of n bytes when it is over max. It runs before
// anything parses the job.
func CheckSize(n, max int64) error {
	if n > max {
		return Rejectf("", "the job is %d bytes, over the limit of %d (SEGPUB_MAX_JOB_BYTES)", n, max)
	}
	return nil
}

// ReadLimited reads a job from r, stopping after max+1 bytes: a larger job
// is rejected without being held whole.
func ReadLimited(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, Rejectf("", "the job is over the limit of %d bytes (SEGPUB_MAX_JOB_BYTES)", max)
	}
	return data, nil
}
