// Package settings declares each of a binary's settings once, in a table,
// and derives the rest from that table: the command-line flags, the strict
// config file decoder, the environment variables, the help text and one
// precedence rule:
//
//	flag > environment variable > config file > default
//
// An entry names its file key (dotted for a nested one: limits.auth_block is
// auth_block inside limits:), its flag and environment variable (derived
// from the key unless given), its default, its help and where its value goes
// (a Value: a pointer into the binary's config struct and the parser of its
// kind). A secret is never read from the file: its entry says where to put
// it instead, and the file refuses the key with that hint.
//
// The file is YAML with a version key. Decoding is strict: an unknown key is
// an error that names the line and suggests the nearest known key, a key set
// twice is an error, and each kind takes only the YAML it can hold (a bool
// is true or false, never "yes please"). The decoder is ours because it must
// say all that; koanf would add providers and parsers and still need it.
package settings

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// NoFlag as a Setting's Flag keeps it off the command line, where every
// user of the host could read it in the process list: a secret.
const NoFlag = "-"

// Setting is one entry of a binary's settings table.
type Setting struct {
	// Key is the config file key, lower_snake_case, dotted for a nested
	// one ("limits.auth_block").
	Key string
	// Flag is the flag name without dashes; empty derives it from Key
	// ('_' and '.' become '-'); NoFlag means none.
	Flag string
	// Env is the environment variable; empty derives it from Key and the
	// table's EnvPrefix.
	Env string
	// Default is the text form of the value applied when no source gives
	// one, parsed like a flag. Empty leaves the zero value, whose meaning
	// the Help then says (e.g. "default: the host name").
	Default string
	// Help says what the setting does, for --help.
	Help string
	// Value is where the value goes.
	Value Value
	// Secret, when set, keeps the value out of the config file: a file that
	// sets Key is refused with this text, which says where to put it.
	Secret string
	// Path marks a file path: a relative one in the config file is taken
	// relative to the file's directory.
	Path bool
	// Alt names the setting that gives the same thing another way: a
	// secret's file setting, which wins where both are set. When the secret
	// comes from a higher source than its file setting, the file setting is
	// cleared, so that FORLOCK_X beats x_file in the config file and
	// --x-file beats FORLOCK_X.
	Alt string
}

// Table is a binary's settings.
type Table struct {
	// Name is the binary, for messages.
	Name string
	// Version is the only config file version read.
	Version int
	// MaxFileSize bounds the config file.
	MaxFileSize int
	// ConfigEnv is the environment variable naming the config file, which
	// the --config flag names too.
	ConfigEnv string
	// EnvPrefix, e.g. "FORLOCK_AGENT_", derives the environment variables.
	EnvPrefix string
	// Settings, in the order of the help text.
	Settings []Setting
	// CheckFile, if set, runs after the file is applied and before the
	// environment and flags, so an error in the file is reported as the
	// file's.
	CheckFile func() error

	rank map[string]source
}

// source is where a value came from; a higher one wins.
type source int

const (
	unset source = iota
	fromDefault
	fromFile
	fromEnv
	fromFlag
)

// FlagName is s's flag name, or "" if it has none.
func (s Setting) FlagName() string {
	switch s.Flag {
	case NoFlag:
		return ""
	case "":
		return strings.NewReplacer("_", "-", ".", "-").Replace(s.Key)
	}
	return s.Flag
}

// EnvName is s's environment variable in table t.
func (t *Table) EnvName(s Setting) string {
	if s.Env != "" {
		return s.Env
	}
	return t.EnvPrefix + strings.ToUpper(strings.ReplaceAll(s.Key, ".", "_"))
}

// flagValue records a flag's text; Resolve parses it in its turn.
type flagValue struct {
	typ string
	raw []string
}

func (f *flagValue) String() string     { return "" }
func (f *flagValue) Set(v string) error { f.raw = append(f.raw, v); return nil }
func (f *flagValue) Type() string       { return f.typ }

// AddFlags adds --config and a flag for every setting to fs.
func (t *Table) AddFlags(fs *pflag.FlagSet) {
	fs.String("config", "", fmt.Sprintf("YAML config file, version %d (env %s)", t.Version, t.ConfigEnv))
	for _, s := range t.Settings {
		name := s.FlagName()
		if name == "" {
			continue
		}
		fv := &flagValue{typ: s.Value.Type()}
		usage := fmt.Sprintf("%s\n(file %s, env %s)", s.Help, s.Key, t.EnvName(s))
		if s.Secret != "" {
			usage = fmt.Sprintf("%s\n(env %s; not read from the file)", s.Help, t.EnvName(s))
		}
		f := fs.VarPF(fv, name, "", usage)
		f.DefValue = s.Default
		if fv.typ == "bool" {
			f.NoOptDefVal = "true"
		}
	}
}

// Resolve sets every setting from, highest first, its flag in fs (added by
// AddFlags of a table of the same settings), its environment variable, the config file (--config or
// ConfigEnv) and its default.
func (t *Table) Resolve(fs *pflag.FlagSet, getenv func(string) string) error {
	if err := t.Defaults(); err != nil {
		return err
	}
	path, _ := fs.GetString("config")
	if !fs.Changed("config") {
		path = getenv(t.ConfigEnv)
	}
	if path != "" {
		if err := t.Load(path); err != nil {
			return err
		}
	}
	for _, s := range t.Settings {
		env := t.EnvName(s)
		if v := getenv(env); v != "" {
			if err := t.set(s, v, fromEnv); err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
		}
	}
	for _, s := range t.Settings {
		f := fs.Lookup(s.FlagName())
		if s.FlagName() == "" || f == nil {
			continue
		}
		fv, ok := f.Value.(*flagValue)
		if !ok || len(fv.raw) == 0 {
			continue
		}
		v := fv.raw[len(fv.raw)-1]
		if fv.typ == "strings" { // a repeated list flag adds up
			v = strings.Join(fv.raw, ",")
		}
		if err := t.set(s, v, fromFlag); err != nil {
			return fmt.Errorf("--%s: %w", s.FlagName(), err)
		}
	}
	for _, s := range t.Settings {
		if s.Alt == "" {
			continue
		}
		if alt := t.setting(s.Alt); t.rank[s.Key] > t.rank[alt.Key] {
			alt.Value.reset()
		}
	}
	return nil
}

// Defaults resets every setting to its default.
func (t *Table) Defaults() error {
	t.rank = map[string]source{}
	for _, s := range t.Settings {
		s.Value.reset()
		if s.Default == "" {
			continue
		}
		if err := t.set(s, s.Default, fromDefault); err != nil {
			return fmt.Errorf("default of %s: %w", s.Key, err)
		}
	}
	return nil
}

func (t *Table) set(s Setting, v string, from source) error {
	if err := s.Value.Set(v); err != nil {
		return err
	}
	t.rank[s.Key] = from
	return nil
}

// Given reports whether a setting whose key starts with prefix was set by
// the file, the environment or a flag, e.g. "vault." for a section.
func (t *Table) Given(prefix string) bool {
	for k, r := range t.rank {
		if r >= fromFile && strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

func (t *Table) setting(key string) Setting {
	i := slices.IndexFunc(t.Settings, func(s Setting) bool { return s.Key == key })
	if i < 0 {
		panic("settings: no setting " + key)
	}
	return t.Settings[i]
}

// Load applies the config file at path over the current values.
func (t *Table) Load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, int64(t.MaxFileSize)+1))
	if err == nil {
		err = t.Decode(data, filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

var (
	keyForm  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	flagForm = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	envForm  = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

// Check verifies the table is complete: every setting has a well-formed,
// unique key, flag (unless a secret kept off the command line) and
// environment variable, help, a value, and a default that parses. It
// applies the defaults. Each binary's tests call it.
func (t *Table) Check() error {
	var errs []error
	seen := map[string]string{}
	claim := func(what, name, key string) {
		if other, dup := seen[what+name]; dup {
			errs = append(errs, fmt.Errorf("%s %s: both %s and %s", what, name, other, key))
		}
		seen[what+name] = key
	}
	claim("env", t.ConfigEnv, "config")
	claim("flag", "config", "config")
	for _, s := range t.Settings {
		switch {
		case !keyForm.MatchString(s.Key) || s.Key == "version":
			errs = append(errs, fmt.Errorf("key %q: want lower_snake_case, dotted for nested", s.Key))
		case s.Value == nil:
			errs = append(errs, fmt.Errorf("%s: no value", s.Key))
		case strings.TrimSpace(s.Help) == "":
			errs = append(errs, fmt.Errorf("%s: no help", s.Key))
		case s.FlagName() == "" && s.Secret == "":
			errs = append(errs, fmt.Errorf("%s: no flag, and not a secret", s.Key))
		case s.FlagName() != "" && !flagForm.MatchString(s.FlagName()):
			errs = append(errs, fmt.Errorf("%s: flag %q: want lower-case-with-dashes", s.Key, s.FlagName()))
		case !envForm.MatchString(t.EnvName(s)):
			errs = append(errs, fmt.Errorf("%s: env %q: want UPPER_CASE", s.Key, t.EnvName(s)))
		case s.Alt != "" && !slices.ContainsFunc(t.Settings, func(o Setting) bool { return o.Key == s.Alt }):
			errs = append(errs, fmt.Errorf("%s: alt %s is no setting", s.Key, s.Alt))
		}
		claim("key", s.Key, s.Key)
		claim("env", t.EnvName(s), s.Key)
		if f := s.FlagName(); f != "" {
			claim("flag", f, s.Key)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, t.Defaults())
	}
	return errors.Join(errs...)
}

// GoStyleArgs rewrites Go flag package style single-dash long flags
// ("-config x", "-version") to pflag's "--config x", so invocations
// written for a binary built on the flag package keep working. Only names
// of flags in fs (and help, version) are rewritten; "--" ends flags.
func GoStyleArgs(args []string, fs *pflag.FlagSet) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if a == "--" {
			break
		}
		name, ok := strings.CutPrefix(a, "-")
		if !ok || strings.HasPrefix(name, "-") || len(name) < 2 {
			continue
		}
		base, _, _ := strings.Cut(name, "=")
		if fs.Lookup(base) != nil || base == "help" || base == "version" {
			out[i] = "-" + a
		}
	}
	return out
}
