package cli

import (
	"context"
	"flag"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/segpub/segpub/internal/indexes"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// runMigrate is `segpub migrate indexes --project P`.
func runMigrate(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] != "indexes" {
		fmt.Fprintln(env.Stderr, "usage: segpub migrate indexes --project P [--database-url URL]")
		return ExitFailure
	}
	fs := flag.NewFlagSet("migrate indexes", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	project := fs.String("project", "", "project id whose tables get the indexes")
	if ok, code := parseFlags(fs, args[1:], env); !ok {
		return code
	}
	tables, err := schema.For(*project)
	if err != nil {
		return fail(env, "migrate", fmt.Errorf("--project: %w", err))
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "migrate", err)
	}
	defer pool.Close()
	out, err := indexes.Create(ctx, pool, tables, c.logger(env))
	printJSON(env.Stdout, map[string]any{"project_id": *project, "indexes": out})
	if err != nil {
		return fail(env, "migrate", err)
	}
	return ExitOK
}

// runSeed is `segpub seed --project P --users N`.
func runSeed(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	project := fs.String("project", "", "project id to create and fill")
	users := fs.Int("users", 10000, "number of users")
	seedN := fs.Int64("seed", 1, "random seed: the same seed gives the same data")
	replace := fs.Bool("replace", false, "drop the project's tables first if they exist")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	if _, err := schema.For(*project); err != nil {
		return fail(env, "seed", fmt.Errorf("--project: %w", err))
	}
	if *users < 0 {
		return fail(env, "seed", fmt.Errorf("--users: must not be negative, got %d", *users))
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "seed", err)
	}
	defer pool.Close()
	cfg := seed.Config{ProjectID: *project, Users: *users, Seed: *seedN, Logger: c.logger(env), Replace: *replace}
	if f, ok := env.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		cfg.Progress = f
	}
	stats, err := seed.Run(ctx, pool, cfg)
	if err != nil {
		return fail(env, "seed", err)
	}
	printJSON(env.Stdout, map[string]any{
		"project_id": *project, "users": stats.Users, "devices": stats.Devices, "events": stats.Events,
		"deliveries": stats.Deliveries, "variants": stats.Variants, "duration_ms": stats.Duration.Milliseconds(),
	})
	return ExitOK
}
