package contact

import "testing"

func TestEmail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw       string
		null      bool
		addr, key string
		st        Status
	}{
		{"a@b.co", false, "a@b.co", "a@b.co", OK},
		{" \tMiXed@Example.COM\r\n", false, "MiXed@Example.COM", "mixed@example.com", OK},
		{"ÄDA@ex.com", false, "ÄDA@ex.com", "äda@ex.com", OK},
		{"a.b@c.d.e", false, "a.b@c.d.e", "a.b@c.d.e", OK},
		{"", true, "", "", Missing},
		{"", false, "", "", Missing},
		{" \t\v\f ", false, "", "", Missing},
		{"a@b", false, "", "", Invalid},
		{"a@.b", false, "", "", Invalid},
		{"a@b.", false, "", "", Invalid},
		{"@b.c", false, "", "", Invalid},
		{"a@@b.c", false, "", "", Invalid},
		{"a@b@c.d", false, "", "", Invalid},
		{"a b@c.d", false, "", "", Invalid},
		{"a@b.c d", false, "", "", Invalid},
		{"a\u00a0b@c.d", false, "", "", Invalid},
		{"a@b..c", false, "a@b..c", "a@b..c", OK},
	}
	for _, c := range cases {
		addr, key, st := Email([]byte(c.raw), c.null)
		if st != c.st || string(addr) != c.addr || string(key) != c.key {
			t.Errorf("Email(%q) = %q, %q, %v; want %q, %q, %v", c.raw, addr, key, st, c.addr, c.key, c.st)
		}
	}
}

func TestPhone(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw, want string
		st        Status
	}{
		{"010-1234-5678", "01012345678", OK},
		{"+82 10-1234-5678", "01012345678", OK},
		{"+821012345678", "01012345678", OK},
		{"(010) 1234.5678", "01012345678", OK},
		{" 011-123-4567 ", "0111234567", OK},
		{"016 123 4567", "0161234567", OK},
		{"0191234567", "0191234567", OK},
		{"02-123-4567", "", Invalid},
		{"0121234567", "", Invalid},
		{"010123456", "", Invalid},
		{"010123456789", "", Invalid},
		{"82 10 1234 5678", "", Invalid},
		{"+8201012345678", "", Invalid},
		{"010-1234-567a", "", Invalid},
		{"010\t1234\t5678", "", Invalid},
		{"   ", "", Missing},
	}
	for _, c := range cases {
		got, st := Phone([]byte(c.raw), false)
		if st != c.st || string(got) != c.want {
			t.Errorf("Phone(%q) = %q, %v; want %q, %v", c.raw, got, st, c.want, c.st)
		}
	}
	if _, st := Phone(nil, true); st != Missing {
		t.Error("NULL phone is not missing")
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	if tok, st := Token([]byte(" ab c\n"), false); st != OK || string(tok) != "ab c" {
		t.Errorf("Token = %q, %v", tok, st)
	}
	if _, st := Token([]byte(" \t"), false); st != Missing {
		t.Error("blank token is not missing")
	}
	if _, st := Token(nil, true); st != Missing {
		t.Error("NULL token is not missing")
	}
}
