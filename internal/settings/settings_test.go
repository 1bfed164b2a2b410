package settings

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

type item struct {
	Name  string `yaml:"name"`
	Every string `yaml:"every"`
}

type conf struct {
	Listen  string
	Beat    time.Duration
	Verbose bool
	Workers int
	Rate    float64
	Reserve int64
	Names   []string
	Items   []item
	Secret  string
	SecretF string
	Nested  time.Duration
	CAFile  string
}

func table(c *conf) *Table {
	return &Table{
		Name: "testd", Version: 1, MaxFileSize: 1 << 10, ConfigEnv: "T_CONFIG", EnvPrefix: "T_",
		Settings: []Setting{
			{Key: "listen", Default: ":7443", Help: "listen address", Value: String(&c.Listen)},
			{Key: "heartbeat_interval", Flag: "beat", Default: "10s", Help: "beat", Value: Duration(&c.Beat)},
			{Key: "verbose", Help: "talk", Value: Bool(&c.Verbose)},
			{Key: "workers", Default: "4", Help: "workers", Value: Int(&c.Workers)},
			{Key: "rate", Help: "rate", Value: Float(&c.Rate)},
			{Key: "reserve", Default: "64MiB", Help: "reserve", Value: Size(&c.Reserve)},
			{Key: "names", Flag: "name", Env: "T_NAMES", Help: "names", Value: List(&c.Names)},
			{Key: "items", Help: "items", Value: YAML(&c.Items, "yaml")},
			{Key: "secret", Flag: NoFlag, Env: "T_SECRET", Help: "secret", Secret: "use T_SECRET or secret_file", Value: String(&c.Secret), Alt: "secret_file"},
			{Key: "secret_file", Help: "secret file", Value: String(&c.SecretF), Path: true},
			{Key: "limits.nested", Flag: "nested", Help: "nested", Value: Duration(&c.Nested)},
			{Key: "ca_file", Help: "ca", Value: String(&c.CAFile), Path: true},
		},
	}
}

func resolve(t *testing.T, args []string, env map[string]string) (conf, error) {
	t.Helper()
	var c conf
	tb := table(&c)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	tb.AddFlags(fs)
	require.NoError(t, fs.Parse(args))
	err := tb.Resolve(fs, func(k string) string { return env[k] })
	return c, err
}

func TestTableComplete(t *testing.T) {
	var c conf
	require.NoError(t, table(&c).Check())
	tb := table(&c)
	tb.Settings = append(tb.Settings, Setting{Key: "listen", Help: "again", Value: String(&c.Listen)},
		Setting{Key: "Bad", Help: "x", Value: String(&c.Listen)}, Setting{Key: "nohelp", Value: String(&c.Listen)},
		Setting{Key: "noflag", Flag: NoFlag, Help: "x", Value: String(&c.Listen)},
		Setting{Key: "baddefault", Help: "x", Default: "soon", Value: Duration(&c.Beat)})
	err := tb.Check()
	require.ErrorContains(t, err, "key listen: both listen and listen")
	require.ErrorContains(t, err, "flag listen: both listen and listen")
	require.ErrorContains(t, err, "env T_LISTEN: both listen and listen")
	require.ErrorContains(t, err, `key "Bad"`)
	require.ErrorContains(t, err, "nohelp: no help")
	require.ErrorContains(t, err, "noflag: no flag, and not a secret")
	tb.Settings = append(table(&c).Settings, Setting{Key: "baddefault", Help: "x", Default: "soon", Value: Duration(&c.Beat)})
	require.ErrorContains(t, tb.Check(), `default of baddefault: "soon" is not a duration`)
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`version: 1
listen: file:1
heartbeat_interval: 7s
workers: 8
names: [a, b]
secret_file: s.txt
ca_file: /abs/ca.pem
limits:
  nested: 3s
items:
  - {name: x, every: 1h}
`), 0o600))

	c, err := resolve(t, nil, nil)
	require.NoError(t, err)
	require.Equal(t, conf{Listen: ":7443", Beat: 10 * time.Second, Workers: 4, Reserve: 64 << 20}, c, "defaults")

	c, err = resolve(t, []string{"--config", file}, nil)
	require.NoError(t, err)
	require.Equal(t, conf{Listen: "file:1", Beat: 7 * time.Second, Workers: 8, Reserve: 64 << 20, Names: []string{"a", "b"},
		SecretF: filepath.Join(dir, "s.txt"), Nested: 3 * time.Second, CAFile: "/abs/ca.pem", Items: []item{{"x", "1h"}}}, c, "file over defaults")

	env := map[string]string{"T_CONFIG": file, "T_LISTEN": "env:2", "T_WORKERS": "9", "T_NAMES": "c, d", "T_SECRET": "pw",
		"T_LIMITS_NESTED": "4s", "T_ITEMS": "[{name: y}]", "T_VERBOSE": "true"}
	c, err = resolve(t, nil, env)
	require.NoError(t, err)
	require.Equal(t, conf{Listen: "env:2", Beat: 7 * time.Second, Workers: 9, Reserve: 64 << 20, Names: []string{"c", "d"}, Verbose: true,
		Secret: "pw", Nested: 4 * time.Second, CAFile: "/abs/ca.pem", Items: []item{{Name: "y"}}}, c,
		"env over file; the secret from the environment clears the file's secret_file")

	c, err = resolve(t, []string{"--listen", "", "--name", "e", "--name", "f,g", "--verbose=false", "--secret-file", "/f", "--nested", "5s",
		"--reserve", "1KiB", "--beat", "1m"}, env)
	require.NoError(t, err)
	require.Equal(t, conf{Listen: "", Beat: time.Minute, Workers: 9, Reserve: 1 << 10, Names: []string{"e", "f", "g"},
		Secret: "pw", SecretF: "/f", Nested: 5 * time.Second, CAFile: "/abs/ca.pem", Items: []item{{Name: "y"}}}, c,
		"flags over env, an empty flag too; a repeated list flag adds up; a secret's file flag is kept over its env (the file wins at use)")

	c, err = resolve(t, []string{"--config", filepath.Join(dir, "none.yaml"), "--verbose"}, env)
	require.ErrorContains(t, err, "config file: open ")
	require.False(t, c.Verbose)
}

func TestResolveErrors(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		{[]string{"--beat", "soon"}, nil, `--beat: "soon" is not a duration such as 10s or 24h`},
		{[]string{"--workers", "many"}, nil, `--workers: "many" is not a whole number`},
		{[]string{"--reserve", "lots"}, nil, `--reserve: size "lots": want bytes or a number with KiB, MiB or GiB, e.g. 64MiB`},
		{nil, map[string]string{"T_VERBOSE": "yes please"}, `T_VERBOSE: "yes please" is not true or false`},
		{nil, map[string]string{"T_RATE": "fast"}, `T_RATE: "fast" is not a number`},
		{nil, map[string]string{"T_ITEMS": "[{nme: y}]"}, `T_ITEMS: line 1: unknown key '[0].nme' (did you mean [0].name?)`},
	} {
		_, err := resolve(t, tt.args, tt.env)
		require.EqualError(t, err, tt.wantErr)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tt := range []struct{ in, wantErr string }{
		{"", `empty: it needs at least "version: 1"`},
		{"# nothing\n", `empty: it needs at least "version: 1"`},
		{"listen: x\n", `version is missing: add "version: 1" as the first line`},
		{"version: 2\n", "line 1: version 2 is not supported: testd reads version 1"},
		{"version: '1'\n", `line 1: version must be a whole number: "version: 1"`},
		{"version: 1\n---\nversion: 1\n", "holds more than one YAML document: keep only one"},
		{"- a\n", "line 1: expected a mapping of settings"},
		{"version: [1\n", "not valid YAML"},
		{"version: 1\n#" + strings.Repeat("x", 1<<10), "larger than 1024 bytes"},
		{"version: 1\nheartbeat_intervall: 1s\n", "line 2: unknown key 'heartbeat_intervall' (did you mean heartbeat_interval?)"},
		{"version: 1\nlimits:\n  nestd: 1s\n", "line 3: unknown key 'limits.nestd' (did you mean limits.nested?)"},
		{"version: 1\nlimit:\n  nested: 1s\n", "line 2: unknown key 'limit' (did you mean limits?)"},
		{"version: 1\nfoo: bar\n", "line 2: unknown key 'foo': remove it; the known keys here are version, listen, heartbeat_interval,"},
		{"version: 1\nitems: [{name: a, evry: 1h}]\n", "line 2: unknown key 'items[0].evry' (did you mean items[0].every?)"},
		{"version: 1\nsecret: pw\n", "line 2: secret is not read from the config file: use T_SECRET or secret_file"},
		{"version: 1\nlisten: a\nlisten: b\n", "line 3: key listen is set twice: keep one"},
		{"version: 1\nlisten: [a]\n", "line 2: listen: must be a single value, not a list or mapping"},
		{"version: 1\nlisten: true\n", "line 2: listen: must be a text value; quote it"},
		{"version: 1\nverbose: yes please\n", "line 2: verbose: must be true or false"},
		{"version: 1\nworkers: '3'\n", "line 2: workers: must be a whole number"},
		{"version: 1\nheartbeat_interval: often\n", `line 2: heartbeat_interval: "often" is not a duration`},
		{"version: 1\nnames: {a: 1}\n", "line 2: names: must be a list of names"},
		{"version: 1\nnames: [[a]]\n", "line 2: names: must be a list of names"},
		{"version: 1\nlimits: 3\n", "line 2: limits must be a mapping of settings"},
		{"version: 1\n[a]: 3\n", "line 2: a key must be a name"},
	} {
		var c conf
		err := table(&c).Decode([]byte(tt.in), "")
		require.ErrorContains(t, err, tt.wantErr, "%q", tt.in)
	}
	var c conf
	require.NoError(t, table(&c).Decode([]byte("version: 1\nlisten:\nnames: x, y\nlimits:\n"), ""))
	require.Equal(t, conf{Names: []string{"x", "y"}}, c, "a null value keeps the default; comma-separated text is a list")
}

func TestGivenAndGoStyleArgs(t *testing.T) {
	var c conf
	tb := table(&c)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	tb.AddFlags(fs)
	args := GoStyleArgs([]string{"-config", "x", "-nested=3s", "-version", "-h", "-x", "--", "-listen"}, fs)
	require.Equal(t, []string{"--config", "x", "--nested=3s", "--version", "-h", "-x", "--", "-listen"}, args)
	require.NoError(t, fs.Parse([]string{"--nested", "3s"}))
	require.NoError(t, tb.Resolve(fs, func(string) string { return "" }))
	require.True(t, tb.Given("limits."))
	require.False(t, tb.Given("listen"), "a default is not given")
}

func TestHelpListsEverySetting(t *testing.T) {
	var c conf
	tb := table(&c)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	tb.AddFlags(fs)
	help := fs.FlagUsages()
	for _, s := range tb.Settings {
		require.Contains(t, help, tb.EnvName(s))
		if s.FlagName() != "" {
			require.Contains(t, help, "--"+s.FlagName()+" ")
			require.Contains(t, help, "file "+s.Key)
		}
	}
	require.Contains(t, help, "(default 10s)")
	require.NotContains(t, help, "--secret ")
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("version: 1\nlisten: a:1\nnames: [a, b]\nlimits:\n  nested: 3s\nitems: [{name: x}]\n"))
	f.Add([]byte("version: 1\nlisten: &a x\nca_file: *a\n"))
	f.Add([]byte("{version: 1, verbose: true, workers: 3, rate: 1.5, reserve: 2GiB}"))
	f.Add([]byte("version: 1\nsecret_file: s\nheartbeat_interval: 10s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c conf
		tb := table(&c)
		require.NoError(t, tb.Defaults())
		if err := tb.Decode(data, "/etc/t"); err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		require.True(t, c.SecretF == "" || filepath.IsAbs(c.SecretF), "relative paths are resolved: %q", c.SecretF)
		require.Empty(t, c.Secret, "a secret is never read from the file")
		require.GreaterOrEqual(t, c.Reserve, int64(0))
	})
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "512KiB": 512 << 10, "64MiB": 64 << 20, "2 GiB": 2 << 30, "10B": 10} {
		got, err := ParseSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-1", "64MB", "1.5GiB", "lots"} {
		_, err := ParseSize(in)
		require.ErrorContains(t, err, "want bytes or a number with KiB, MiB or GiB", in)
	}
}

func TestLog(t *testing.T) {
	var lv slog.Level
	var format string
	require.NoError(t, LogLevel(&lv).Set("WARNING"))
	require.Equal(t, slog.LevelWarn, lv)
	require.EqualError(t, LogLevel(&lv).Set("loud"), `log level "loud" is not one of debug, info, warn, error`)
	require.EqualError(t, LogFormat(&format).Set("xml"), `log format "xml" is not json or text`)
	var buf bytes.Buffer
	NewLogger(&buf, slog.LevelInfo, "text").Debug("hidden")
	NewLogger(&buf, slog.LevelInfo, "text").Info("shown")
	NewLogger(&buf, slog.LevelInfo, "json").Info("json")
	require.Contains(t, buf.String(), "msg=shown")
	require.Contains(t, buf.String(), `"msg":"json"`)
	require.NotContains(t, buf.String(), "hidden")
}

func TestExecuteExitCodes(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		runErr  error
		want    int
		wantErr string
	}{
		{[]string{"-listen", "x"}, nil, ExitOK, ""},
		{[]string{"stray"}, nil, ExitUsage, `testd: unexpected argument "stray": testd takes flags only`},
		{[]string{"--nope"}, nil, ExitUsage, "testd: unknown flag: --nope"},
		{nil, UsageError(errors.New("bad setting")), ExitUsage, "testd: bad setting"},
		{nil, errors.New("failed"), ExitFailure, "testd: failed"},
	} {
		var c conf
		var stderr bytes.Buffer
		cmd := &cobra.Command{Use: "testd", RunE: func(*cobra.Command, []string) error { return tt.runErr }}
		cmd.SetErr(&stderr)
		Daemon(cmd, table(&c))
		require.Equal(t, tt.want, Execute(context.Background(), cmd, tt.args), "%v", tt.args)
		require.Contains(t, stderr.String(), tt.wantErr)
	}
}
