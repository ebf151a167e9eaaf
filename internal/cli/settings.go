package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// decls declares one command's settings. A setting is one call: its flag,
// its environment variable (or "" for none), its default and its help. The
// flag wins over the variable; the variable wins over the default. Help
// prints the default once (pflag's "(default …)") and names the variable.
type decls struct {
	fs   *pflag.FlagSet
	env  *Env
	vars []envVar
}

// envVar reads one setting from the environment when its flag is not given.
type envVar struct {
	flag, name string
	set        func(raw string) error
}

func newDecls(fs *pflag.FlagSet, env *Env) *decls { return &decls{fs: fs, env: env} }

func envHelp(help, env string) string {
	if env == "" {
		return help
	}
	return help + " ($" + env + ")"
}

func (d *decls) bind(flag, env string, set func(raw string) error) {
	if env != "" {
		d.vars = append(d.vars, envVar{flag: flag, name: env, set: set})
	}
}

// String declares a string setting.
func (d *decls) String(p *string, flag, env, def, help string) {
	d.fs.StringVar(p, flag, def, envHelp(help, env))
	d.bind(flag, env, func(raw string) error { *p = raw; return nil })
}

// Int declares a whole-number setting.
func (d *decls) Int(p *int, flag, env string, def int, help string) {
	d.fs.IntVar(p, flag, def, envHelp(help, env))
	d.bind(flag, env, func(raw string) error {
		v, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		*p = v
		return nil
	})
}

// Int64 declares a 64-bit whole-number setting.
func (d *decls) Int64(p *int64, flag, env string, def int64, help string) {
	d.fs.Int64Var(p, flag, def, envHelp(help, env))
	d.bind(flag, env, func(raw string) error {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		*p = v
		return nil
	})
}

// Float64 declares a number setting.
func (d *decls) Float64(p *float64, flag, env string, def float64, help string) {
	d.fs.Float64Var(p, flag, def, envHelp(help, env))
	// Help shows 10000000, not pflag's 1e+07.
	d.fs.Lookup(flag).DefValue = strconv.FormatFloat(def, 'f', -1, 64)
	d.bind(flag, env, func(raw string) error {
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", raw)
		}
		*p = v
		return nil
	})
}

// Duration declares a duration setting (90s, 10m, 1h30m).
func (d *decls) Duration(p *time.Duration, flag, env string, def time.Duration, help string) {
	d.fs.DurationVar(p, flag, def, envHelp(help, env))
	d.bind(flag, env, func(raw string) error {
		v, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration (like 90s or 10m)", raw)
		}
		*p = v
		return nil
	})
}

// Bool declares an on/off setting. parse reads the variable's value; nil
// accepts true/false/1/0/on/off.
func (d *decls) Bool(p *bool, flag, env string, def bool, help string, parse func(raw string) (bool, error)) {
	d.fs.BoolVar(p, flag, def, envHelp(help, env))
	if parse == nil {
		parse = parseOnOff
	}
	d.bind(flag, env, func(raw string) error {
		v, err := parse(raw)
		if err != nil {
			return err
		}
		*p = v
		return nil
	})
}

func parseOnOff(raw string) (bool, error) {
	switch strings.ToLower(raw) {
	case "1", "true", "on", "yes":
		return true, nil
	case "0", "false", "off", "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is not on or off", raw)
}

// hideExcept keeps the named flags (and -h) in the help; the others stay
// accepted, so command lines written before the command had its own flag
// list keep working.
func (d *decls) hideExcept(shown ...string) {
	keep := map[string]bool{"help": true}
	for _, s := range shown {
		keep[s] = true
	}
	d.fs.VisitAll(func(f *pflag.Flag) {
		if !keep[f.Name] {
			f.Hidden = true
		}
	})
}

// applyEnv reads the environment variables of the settings whose flag was
// not given. Every variable that does not parse is reported, by name.
func (d *decls) applyEnv() error {
	var bad []string
	for _, v := range d.vars {
		if d.fs.Changed(v.flag) {
			continue
		}
		raw := d.env.Getenv(v.name)
		if raw == "" {
			continue
		}
		if err := v.set(raw); err != nil {
			bad = append(bad, fmt.Sprintf("$%s: %v", v.name, err))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}
