package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/pflag"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/pgtimeout"
)

func serveSettings(t *testing.T, vars map[string]string) *settings {
	t.Helper()
	env := &Env{Getenv: func(k string) string {
		if k == "SEGPUB_DATABASE_URL" {
			return dbtest.URL()
		}
		return vars[k]
	}}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	d := newDecls(fs, env)
	var s settings
	s.register(d)
	if err := fs.Parse(nil); err != nil {
		t.Fatalf("parse settings: %v", err)
	}
	if err := d.applyEnv(); err != nil {
		t.Fatalf("settings from the environment: %v", err)
	}
	return &s
}

func showSetting(t *testing.T, p *pgxpool.Pool, setting string) string {
	t.Helper()
	var v string
	if err := p.QueryRow(context.Background(), "SHOW "+setting).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Every connection segpub opens carries a statement timeout fit for what
// it runs, the audience's or segpub's own tables' (shorter), and the
// server's check that segpub is still there.
func TestPoolsSetStatementTimeouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		vars                   map[string]string
		audience, state, check string
	}{
		{nil, "6h", "5min", "2s"},
		{map[string]string{"SEGPUB_STATEMENT_TIMEOUT": "3h", "SEGPUB_STATE_STATEMENT_TIMEOUT": "90s", "SEGPUB_DB_CHECK_INTERVAL": "5s"}, "3h", "90s", "5s"},
	} {
		s := serveSettings(t, c.vars)
		aud, err := s.pool(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer aud.Close()
		state, err := s.statePool(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer state.Close()
		if got := showSetting(t, aud, "statement_timeout"); got != c.audience {
			t.Errorf("%v: audience statement_timeout %q, want %q", c.vars, got, c.audience)
		}
		if got := showSetting(t, state, "statement_timeout"); got != c.state {
			t.Errorf("%v: state statement_timeout %q, want %q", c.vars, got, c.state)
		}
		conn, err := aud.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		major := pgtimeout.ServerMajor(conn.Conn().PgConn())
		conn.Release()
		if major < 14 {
			continue
		}
		for _, p := range []*pgxpool.Pool{aud, state} {
			if got := showSetting(t, p, "client_connection_check_interval"); got != c.check {
				t.Errorf("%v: client_connection_check_interval %q, want %q", c.vars, got, c.check)
			}
		}
	}
}

// A bad value is refused with the setting's name.
func TestStatementTimeoutSettingsValidated(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"SEGPUB_STATEMENT_TIMEOUT":       "--statement-timeout ($SEGPUB_STATEMENT_TIMEOUT): -1s is negative",
		"SEGPUB_STATE_STATEMENT_TIMEOUT": "--state-statement-timeout ($SEGPUB_STATE_STATEMENT_TIMEOUT): -1s is negative",
		"SEGPUB_DB_CHECK_INTERVAL":       "--db-check-interval ($SEGPUB_DB_CHECK_INTERVAL): -1s is negative",
	} {
		s := serveSettings(t, map[string]string{name: "-1s"})
		_, err := s.open(context.Background(), nil, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=-1s: %v, want %q", name, err, want)
		}
	}
	s := serveSettings(t, map[string]string{"SEGPUB_STATEMENT_TIMEOUT": "900h"})
	if _, err := s.pool(context.Background()); err == nil || !strings.Contains(err.Error(), "$SEGPUB_STATEMENT_TIMEOUT") {
		t.Errorf("900h: %v", err)
	}
}

// The audience sessions run at segpub's work_mem (or the operator's); its
// own tables' sessions keep the server's; a bad size names the setting.
func TestAudienceWorkMem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		vars     map[string]string
		audience string
	}{
		{nil, ""}, // the server's own
		{map[string]string{"SEGPUB_AUDIENCE_WORK_MEM": "24MB"}, "24MB"},
	} {
		s := serveSettings(t, c.vars)
		aud, err := s.pool(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer aud.Close()
		state, err := s.statePool(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer state.Close()
		want := c.audience
		if want == "" {
			want = showSetting(t, state, "work_mem")
		}
		if got := showSetting(t, aud, "work_mem"); got != want {
			t.Errorf("%v: audience work_mem %q, want %q", c.vars, got, want)
		}
		var server string
		if err := state.QueryRow(ctx, `SELECT boot_val || coalesce(unit, '') FROM pg_settings WHERE name = 'work_mem'`).Scan(&server); err != nil {
			t.Fatal(err)
		}
		if got := showSetting(t, state, "work_mem"); got == c.audience && c.audience != server {
			t.Errorf("%v: state sessions run at the audience's work_mem %q", c.vars, got)
		}
	}
	for _, bad := range []string{"64", "lots", "-1MB", "64mb"} {
		s := serveSettings(t, map[string]string{"SEGPUB_AUDIENCE_WORK_MEM": bad})
		if _, err := s.pool(ctx); err == nil || !strings.Contains(err.Error(), "--audience-work-mem ($SEGPUB_AUDIENCE_WORK_MEM)") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
