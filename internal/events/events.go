// Package events emits run events (a run's start, progress and end) to an
// optional stream for dashboards and downstream consumers: Amazon Kinesis in
// production, JetStream or a file locally (SEGPUB_EVENTS_URL).
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/nats-io/nats.go/jetstream"
)

// Event is one run event.
type Event struct {
	// Type is started, partitioned, progress, completed, rejected,
	// retrying, failed, paused or cancelled.
	Type       string    `json:"type"`
	RequestID  string    `json:"request_id"`
	ProjectID  string    `json:"project_id,omitempty"`
	CampaignID string    `json:"campaign_id,omitempty"`
	Attempt    int       `json:"attempt,omitempty"`
	At         time.Time `json:"at"`
	Candidates int64     `json:"candidates,omitempty"`
	Published  int64     `json:"published,omitempty"`
	// Result is the run's result on completion.
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// Phase (scan or publish) and Part (from 0) name the range of a
	// partitioned run an event is about; RequestID is the run's all the
	// same. Absent for a whole run, and for a partitioned run's own
	// events (started, partitioned, completed).
	Phase string `json:"phase,omitempty"`
	Part  *int   `json:"part,omitempty"`
}

// Emitter sends events. Emitting is best effort for the run: a failed emit
// is logged by the caller, never fails the run.
type Emitter interface {
	Emit(ctx context.Context, e Event) error
}

// File appends events to a file, one JSON object per line.
type File struct {
	mu   sync.Mutex
	file *os.File
}

// NewFile opens path for appending.
func NewFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open events file: %w", err)
	}
	return &File{file: f}, nil
}

// Emit appends one event.
func (f *File) Emit(_ context.Context, e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err = f.file.Write(append(b, '\n'))
	return err
}

// Close closes the file.
func (f *File) Close() error { return f.file.Close() }

// JetStream publishes events on a subject of a stream it creates.
type JetStream struct {
	js      jetstream.JetStream
	subject string
}

// NewJetStream creates (or updates) the events stream.
func NewJetStream(ctx context.Context, js jetstream.JetStream, stream, subject string) (*JetStream, error) {
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject}, Storage: jetstream.FileStorage,
		MaxAge: 7 * 24 * time.Hour}); err != nil {
		return nil, fmt.Errorf("create events stream %s: %w", stream, err)
	}
	return &JetStream{js: js, subject: subject}, nil
}

// Emit publishes one event.
func (j *JetStream) Emit(ctx context.Context, e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = j.js.Publish(ctx, j.subject, b)
	return err
}

// KinesisAPI is the part of the Kinesis client the emitter uses.
type KinesisAPI interface {
	PutRecord(ctx context.Context, in *kinesis.PutRecordInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)
}

// Kinesis puts events on a stream, partitioned by request id so a run's
// events stay in order.
type Kinesis struct {
	client KinesisAPI
	stream string
}

// NewKinesis returns a Kinesis emitter.
func NewKinesis(client KinesisAPI, stream string) *Kinesis {
	return &Kinesis{client: client, stream: stream}
}

// Emit puts one event.
func (k *Kinesis) Emit(ctx context.Context, e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = k.client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(k.stream), PartitionKey: aws.String(e.RequestID), Data: b})
	if err != nil {
		return fmt.Errorf("put event to %s: %w", k.stream, err)
	}
	return nil
}
