// Package job parses and validates the job message
// (docs/job.md). Parsing is strict: unknown fields, wrong types and unknown
// operators are rejections whose error names the JSON path, so an operator can
// fix the job without reading code.
package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segpub/segpub/internal/channel"
)

// Action is what a job asks for.
type Action string

const (
	ActionPublish       Action = "publish"
	ActionCalculateSize Action = "calculate-size"
)

// Channel is a channel's wire name; what segpub knows of each channel is
// package channel's table.
type Channel = channel.Name

// The contract's channels, under the names the job's users know them by.
const (
	ChannelPush            = channel.Push
	ChannelWebPush         = channel.WebPush
	ChannelKakaoAlimtalk   = channel.KakaoAlimtalk
	ChannelKakaoFriendtalk = channel.KakaoFriendtalk
	ChannelText            = channel.Text
	ChannelEmail           = channel.Email
)

// Channels lists every channel in a stable order: channel's table.
var Channels = channel.Names()

// Job is a validated job message.
type Job struct {
	Version   int
	Action    Action
	RequestID string
	ProjectID string
	// ScheduledAt is the reference time; zero when the job did not give one
	// (the runner then uses the time it received the job).
	ScheduledAt time.Time
	Campaign    Campaign
}

// Campaign is the job's campaign.
type Campaign struct {
	ID       string
	Channel  Channel
	Audience Audience
	// Message is the campaign's message as compact JSON; nil when absent.
	Message         json.RawMessage
	ExperimentID    string
	VariantMessages map[string]json.RawMessage
	Throttle        *Throttle
	// ExcludePreviousRecipients skips users with any delivery_result row
	// for this campaign.
	ExcludePreviousRecipients bool
	// Advertising and FrequencyCap are the delivery governance rules
	// (docs/governance.md); nil when off.
	Advertising  *Advertising
	FrequencyCap *FrequencyCap
	// Delivery is the delivery targeting (docs/delivery.md); nil
	// when off.
	Delivery *Delivery
}

// Throttle splits published messages into timed waves.
type Throttle struct {
	MaxPerInterval  int64
	IntervalMinutes int64
}

// AudienceType is the kind of audience.
type AudienceType string

const (
	AudienceAll     AudienceType = "all"
	AudienceSegment AudienceType = "segment"
	AudienceUserIDs AudienceType = "user_ids"
	AudienceCSV     AudienceType = "csv"
)

// Audience describes who a campaign is for.
type Audience struct {
	Type AudienceType
	// Groups are OR-ed; the conditions inside one group are AND-ed.
	Groups  []Group
	UserIDs []string
	URL     string
}

// Group is one AND-ed list of conditions.
type Group struct {
	Conditions []Condition
}

// Operator compares a property with a condition's value.
type Operator string

const (
	OpEq        Operator = "="
	OpNe        Operator = "!="
	OpGt        Operator = ">"
	OpGe        Operator = ">="
	OpLt        Operator = "<"
	OpLe        Operator = "<="
	OpIn        Operator = "in"
	OpNotIn     Operator = "not_in"
	OpExists    Operator = "exists"
	OpNotExists Operator = "not_exists"
	OpContains  Operator = "contains"
)

// Negative reports whether a missing or mismatched property makes the
// condition true rather than false (docs/job.md).
func (o Operator) Negative() bool { return o == OpNe || o == OpNotIn || o == OpNotExists }

// ValueType is the JSON type of a condition value.
type ValueType int

const (
	ValueNone ValueType = iota
	ValueString
	ValueNumber
	ValueBool
	ValueArray
	ValueTemplate
)

// Value is a condition's value.
type Value struct {
	Type ValueType
	// Str holds a string, a number's literal text, or a template's source.
	Str   string
	Bool  bool
	Items []Value
}

// Error is a rejection: the job is invalid and is never retried. Path is the
// JSON path of the offending value ("" for the whole message).
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Rejectf returns a rejection at path.
func Rejectf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// IsRejection reports whether err is (or wraps) a rejection.
func IsRejection(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
