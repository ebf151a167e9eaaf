package failpoint

import (
	"errors"
	"testing"
)

func TestArmSkipTimes(t *testing.T) {
	t.Parallel()
	var nilSet *Set
	if err := nilSet.Hit(AfterFetch); err != nil {
		t.Fatal("a nil set failed")
	}
	s := &Set{}
	s.Arm(AfterAck, 2, 1)
	var got []bool
	for range 5 {
		got = append(got, s.Hit(AfterAck) != nil)
	}
	if want := []bool{false, false, true, false, false}; len(got) != len(want) || got[2] != true || got[0] || got[1] || got[3] || got[4] {
		t.Fatalf("fired %v, want %v", got, want)
	}
	if err := s.Hit(AfterEncode); err != nil {
		t.Fatal("an unarmed point failed")
	}
	s.Arm(BeforeCommit, 0, 1)
	if err := s.Hit(BeforeCommit); !errors.Is(err, ErrInjected) {
		t.Fatalf("got %v", err)
	}
	if s.Fired(AfterAck) != 1 || s.Passed(AfterAck) != 5 || s.Fired(AfterEncode) != 0 {
		t.Fatalf("fired %d passed %d", s.Fired(AfterAck), s.Passed(AfterAck))
	}
}
