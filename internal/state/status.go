package state

// Status is a run's state in segpub_runs.status. The statuses are listed
// once, in statuses; the table's CHECK constraint (migration 00007) lists
// the same values, and TestStatusesMatchSchema fails when the two differ.
type Status string

const (
	Running  Status = "running"
	Retrying Status = "retrying"
	// HandedBack is a run its worker stopped when shutting down and handed
	// back to the queue: not a failure; the next worker resumes it from
	// its checkpoint.
	HandedBack Status = "handed_back"
	// Scanning and Publishing are a partitioned run's phases: its
	// partitions run as runs of their own.
	Scanning   Status = "scanning"
	Publishing Status = "publishing"
	Completed  Status = "completed"
	Rejected   Status = "rejected"
	Failed     Status = "failed"
	// Paused runs keep their checkpoint and wait for a resume; Cancelled
	// runs stopped for good at an operator's request. A partitioned run
	// paused as a whole keeps its phase in the table (its ranges advance
	// it) and reads as Paused (Runs.Get).
	Paused    Status = "paused"
	Cancelled Status = "cancelled"
)

// statusInfo is what the code needs to know of a status.
type statusInfo struct {
	// final: a run in this state never runs again.
	final bool
	// phase: a partitioned run's phase, whose counts are its partitions'.
	phase bool
}

// statuses is every run status.
var statuses = map[Status]statusInfo{
	Running:    {},
	Retrying:   {},
	HandedBack: {},
	Scanning:   {phase: true},
	Publishing: {phase: true},
	Completed:  {final: true},
	Rejected:   {final: true},
	Failed:     {final: true},
	Paused:     {},
	Cancelled:  {final: true},
}

// Final reports whether a run in this state never runs again.
func (s Status) Final() bool { return statuses[s].final }

// Phase reports whether s is a partitioned run's phase (scanning,
// publishing).
func (s Status) Phase() bool { return statuses[s].phase }

// Statuses returns every run status, in no particular order.
func Statuses() []Status {
	out := make([]Status, 0, len(statuses))
	for s := range statuses {
		out = append(out, s)
	}
	return out
}
