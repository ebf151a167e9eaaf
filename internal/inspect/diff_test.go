package inspect

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A comparison larger than its memory budget spills sorted runs and merges
// them, and reports exactly what the comparison in memory reports: the
// first message of a destination in file order is the one compared, every
// list in destination order, shifts found across runs.
func TestDiffSpilled(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(27, 1))
	base := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	msg := func(person int, title string) string {
		return fmt.Sprintf(`{"request_id":"r","recipient":{"email":"u%05d@x.com"},"send_at":%q,"message":{"title":%q}}`,
			person, base.Add(time.Duration(person)*time.Second).Format(time.RFC3339Nano), title)
	}
	var a, b []string
	for _, p := range rng.Perm(1800) {
		a = append(a, msg(p, "hi"))
	}
	for _, p := range rng.Perm(1800) {
		if p%50 == 7 {
			continue // only in A
		}
		title := "hi"
		if p%40 == 3 {
			title = "changed"
		}
		b = append(b, msg(p, title))
	}
	// Later messages to people already messaged: the first one in the
	// file is the one compared, so a merge that took these would see
	// another title.
	for p := range 100 {
		a = append(a, msg(p*3, "second"))
		b = append(b, msg(p*5, "second"))
	}
	b = append(b, `{"recipient":{"email":"new@x.com"},"send_at":"2026-11-24T09:00:00Z"}`)
	// B's send_at moved by 1.5 s everywhere.
	for i, line := range b {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		at, _ := time.Parse(time.RFC3339Nano, m["send_at"].(string))
		m["send_at"] = at.Add(1500 * time.Millisecond).Format(time.RFC3339Nano)
		raw, _ := json.Marshal(m)
		b[i] = string(raw)
	}
	pa, pb := writeLines(t, a...), writeLines(t, b...)

	want, spilled, err := diffFiles(DiffConfig{Ignore: []string{"request_id"}}, pa, pb)
	if err != nil {
		t.Fatal(err)
	}
	if spilled != 1 { // the differing destinations, waiting for the shifts
		t.Fatalf("in memory: %d spill files, want 1", spilled)
	}
	tmp := t.TempDir()
	got, spilled, err := diffFiles(DiffConfig{Ignore: []string{"request_id"}, MemoryBytes: 4 << 10, TempDir: tmp}, pa, pb)
	if err != nil {
		t.Fatal(err)
	}
	if spilled < 20 {
		t.Fatalf("a 4 KiB budget wrote %d spill files; the merge path was not taken", spilled)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("spill files left behind: %v", left)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("spilled report differs:\nin memory %.2000s\nspilled   %.2000s", want.Summary(10), got.Summary(10))
	}
	// The report says what the data holds, so equality is not vacuous.
	if len(got.Shifted) != 1 || got.Shifted[0].ByMS != 1500 || len(got.OnlyInA) == 0 || strings.Join(got.OnlyInB, ",") != "email:new@x.com" ||
		len(got.RepeatedA) != 100 || len(got.RepeatedB) != 100 || len(got.Different) != 45 || got.Same != 1800-36-45 ||
		got.InA != 1900 || got.InB != len(b) {
		t.Fatalf("report %.2000s", got.Summary(10))
	}
	for _, d := range got.Different {
		if strings.Join(d.Fields, ",") != "message.title" {
			t.Fatalf("different %+v: the uniform shift is not a difference, the title is", d)
		}
	}
}

// A bad line is reported with its file and line even when it comes after a
// spill.
func TestDiffSpilledBadLine(t *testing.T) {
	t.Parallel()
	var lines []string
	for i := range 50 {
		lines = append(lines, fmt.Sprintf(`{"recipient":{"email":"u%d@x.com"}}`, i))
	}
	lines = append(lines, `{"recipient":`)
	p := writeLines(t, lines...)
	_, err := DiffFiles(DiffConfig{MemoryBytes: 256, TempDir: t.TempDir()}, p, p)
	if err == nil || !strings.Contains(err.Error(), filepath.Base(p)+":51: not a JSON object") {
		t.Fatalf("err %v", err)
	}
	if _, err := DiffFiles(DiffConfig{MemoryBytes: -1}, p, p); err == nil || !strings.Contains(err.Error(), "MemoryBytes") {
		t.Fatalf("negative budget: %v", err)
	}
}
