// Package failpoint names the points in the publishing path where a test
// can make a run fail as if its process had died there, to prove that every
// such failure resumes to exactly the expected messages. Failpoints are
// armed by tests only: no setting or environment variable reaches them, and
// production code holds a nil *Set, on which Hit does nothing.
package failpoint

import (
	"errors"
	"fmt"
	"sync"
)

// The points, in the order a run meets them.
const (
	// Planning: a large job's ranges are chosen, before they are recorded.
	Planning = "planning"
	// PlanSent: the plan's first sub-job is on the queue, the others not.
	PlanSent = "plan-sent"
	// AfterFetch: rows read from PostgreSQL, not yet checked.
	AfterFetch = "after-fetch"
	// AfterEncode: a batch of messages encoded, not yet published.
	AfterEncode = "after-encode"
	// BeforeAck: a batch sent to the channel queue, its acknowledgements
	// not yet received.
	BeforeAck = "before-ack"
	// AfterAck: a batch acknowledged, its checkpoint not yet recorded.
	AfterAck = "after-ack"
	// BeforeCommit: every batch published and checkpointed, the run not
	// yet recorded as finished.
	BeforeCommit = "before-commit"
	// HandOff: every scan of a partitioned run finished, the publish
	// sub-jobs not yet all sent.
	HandOff = "hand-off"
)

// All lists the points.
var All = []string{Planning, PlanSent, AfterFetch, AfterEncode, BeforeAck, AfterAck, BeforeCommit, HandOff}

// ErrInjected marks an injected failure.
var ErrInjected = errors.New("injected failure")

// Set holds the armed points of one test. Its zero value has none armed;
// a nil *Set is valid and never fails.
type Set struct {
	mu     sync.Mutex
	armed  map[string]*arm
	passed map[string]int
}

type arm struct{ skip, times, fired int }

// Arm makes the point fail times times, after letting skip hits pass.
func (s *Set) Arm(name string, skip, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.armed == nil {
		s.armed = map[string]*arm{}
	}
	s.armed[name] = &arm{skip: skip, times: times}
}

// Hit is called at the point name; it returns an error wrapping
// ErrInjected when the point is armed to fail now.
func (s *Set) Hit(name string) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.passed == nil {
		s.passed = map[string]int{}
	}
	s.passed[name]++
	a := s.armed[name]
	if a == nil || a.fired >= a.times {
		return nil
	}
	if a.skip > 0 {
		a.skip--
		return nil
	}
	a.fired++
	return fmt.Errorf("failpoint %s: %w", name, ErrInjected)
}

// Fired returns how many times the point failed.
func (s *Set) Fired(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.armed[name]; a != nil {
		return a.fired
	}
	return 0
}

// Passed returns how many times the point was reached.
func (s *Set) Passed(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.passed[name]
}
