// Package pgdb gives segpub's tools a database of their own on a server:
// the demo writes into segpub_demo and the tests into segpub_test, never
// into the server's maintenance database postgres, and their run ledgers
// stay apart.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Databases of segpub's own tools.
const (
	Demo = "segpub_demo"
	Test = "segpub_test"
)

// validName is what segpub creates: a plain lower-case identifier, so it
// needs no quoting rules beyond double quotes.
var validName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Name returns the database a postgres:// URL names; "" when it names none.
func Name(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("database URL: %w", err)
	}
	return strings.TrimPrefix(u.Path, "/"), nil
}

// WithName returns rawURL naming database name instead, keeping the
// server, user and parameters.
func WithName(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("database URL: %w", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// Ensure creates database name on the server serverURL reaches (through
// whatever database it names, usually postgres) unless it exists, and
// returns serverURL naming it.
func Ensure(ctx context.Context, serverURL, name string) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("database name %q: want lower-case letters, digits and _", name)
	}
	target, err := WithName(serverURL, name)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", fmt.Errorf("create database %s: connect: %w", name, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", fmt.Errorf("create database %s: look it up: %w", name, err)
	}
	if exists {
		return target, nil
	}
	// Two processes may both find it missing: the loser's duplicate_database
	// means it is there.
	if _, err := conn.Exec(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "42P04" && pgErr.Code != "23505") {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return target, nil
}
