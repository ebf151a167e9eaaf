package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

// checkResult is what segpub check prints.
type checkResult struct {
	Valid bool `json:"valid"`
	// Path and Error say what is wrong, for a rejected job.
	Path  *string `json:"path,omitempty"`
	Error string  `json:"error,omitempty"`
	// MessageID is a claim check's item, whose job is checked when it is
	// read from the message store.
	MessageID string      `json:"message_id,omitempty"`
	RequestID string      `json:"request_id,omitempty"`
	Action    job.Action  `json:"action,omitempty"`
	Channel   job.Channel `json:"channel,omitempty"`
	Audience  string      `json:"audience,omitempty"`
}

func (a *App) checkCmd() *cobra.Command {
	cmd, d := a.newCmd("check --job FILE",
		"check a job without a database, by the rules a run applies: exit 0 valid, 2 rejected (with the JSON path)")
	var jobPath string
	var maxJobBytes int64
	d.String(&jobPath, "job", "", "", "job file (JSON), or - for standard input")
	d.Int64(&maxJobBytes, "max-job-bytes", "SEGPUB_MAX_JOB_BYTES", job.DefaultMaxJobBytes,
		"larger jobs are rejected before parsing")
	cmd.RunE = a.action(d, noArgs, func(_ context.Context, _ []string) int {
		return runCheck(a.env, jobPath, maxJobBytes, time.Now())
	})
	return cmd
}

// runCheck is segpub check: the worker's parser (an inline job or a claim
// check), then what a run checks before it reads the database
// (publish.Check). The schema (docs/job.schema.json) plays no part: it is
// for editors, and says less.
func runCheck(env *Env, path string, maxJobBytes int64, now time.Time) int {
	if path == "" {
		fmt.Fprintln(env.Stderr, "segpub check: --job is required")
		return ExitFailure
	}
	if maxJobBytes <= 0 {
		fmt.Fprintf(env.Stderr, "segpub check: --max-job-bytes ($SEGPUB_MAX_JOB_BYTES): %d is not positive\n", maxJobBytes)
		return ExitFailure
	}
	data, err := readJob(path, env.Stdin, maxJobBytes)
	if err != nil && !job.IsRejection(err) {
		return fail(env, "check", err)
	}
	var parsed job.Envelope
	if err == nil {
		parsed, err = job.ParseEnvelope(data)
	}
	if err == nil && parsed.Job != nil {
		err = publish.Check(parsed.Job, now)
	}
	if err != nil {
		res := checkResult{Error: err.Error()}
		var rej *job.Error
		if errors.As(err, &rej) {
			res.Path = &rej.Path
		}
		printJSON(env.Stdout, res)
		return outcome(env, "check", err)
	}
	res := checkResult{Valid: true, MessageID: parsed.MessageID}
	if j := parsed.Job; j != nil {
		res.RequestID, res.Action, res.Channel, res.Audience = j.RequestID, j.Action, j.Campaign.Channel, string(j.Campaign.Audience.Type)
	}
	printJSON(env.Stdout, res)
	return ExitOK
}
