package audience

import "testing"

// Only a JSON string is a zone or a language tag.
func TestStringValue(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`"Asia/Seoul"`: "Asia/Seoul", `""`: "", `"a\"b"`: `a"b`, `"\u00e9"`: "é",
	} {
		got := StringValue([]byte(in), nil)
		if got == nil || string(got) != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"", "null", "5", "true", `{"a":1}`, `["en"]`, `"`, `"\x"`} {
		if got := StringValue([]byte(in), nil); got != nil {
			t.Errorf("%s: %q, want nil", in, got)
		}
	}
	if StringValue(nil, nil) != nil {
		t.Error("NULL is a value")
	}
}
