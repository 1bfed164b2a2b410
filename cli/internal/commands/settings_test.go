package commands

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const testConfig = `version: 1
current-context: one
contexts:
  - name: one
    address: one.example:7443
    ca-file: one-ca.pem
    token: tok-one
  - name: two
    address: two.example:7443
    ca-file: /abs/two-ca.pem
    token: tok-two
`

func TestResolveSettings(t *testing.T) {
	home := t.TempDir()
	defaultPath := filepath.Join(home, ".config", "forlock", "forlockctl.yaml")
	require.NoError(t, os.MkdirAll(filepath.Dir(defaultPath), 0o700))
	require.NoError(t, os.WriteFile(defaultPath, []byte(testConfig), 0o600))
	defaultCA := filepath.Join(filepath.Dir(defaultPath), "one-ca.pem")

	xdg := t.TempDir()
	xdgPath := filepath.Join(xdg, "forlock", "forlockctl.yaml")
	require.NoError(t, os.MkdirAll(filepath.Dir(xdgPath), 0o700))
	require.NoError(t, os.WriteFile(xdgPath, []byte("version: 1\ncontexts: [{name: x, address: 'xdg.example:1', token: tok-xdg}]\n"), 0o600))

	other := filepath.Join(t.TempDir(), "other.yaml")
	require.NoError(t, os.WriteFile(other, []byte("version: 1\ncontexts: [{name: o, address: 'other.example:2', ca-file: ca.pem, token: tok-o}]\n"), 0o600))
	otherCA := filepath.Join(filepath.Dir(other), "ca.pem")

	brokenXDG := t.TempDir()
	broken := filepath.Join(brokenXDG, "forlock", "forlockctl.yaml")
	require.NoError(t, os.MkdirAll(filepath.Dir(broken), 0o700))
	require.NoError(t, os.WriteFile(broken, []byte("version: 1\nbogus: true\n"), 0o600))

	emptyHome := t.TempDir()
	all := connFlags{addr: "flag.example:1", caFile: "/flag/ca.pem", token: "tok-flag"}

	tests := []struct {
		name    string
		flags   connFlags
		env     map[string]string
		want    settings
		wantErr string
		usage   bool
	}{
		{
			name: "config current context",
			env:  map[string]string{"HOME": home},
			want: settings{address: "one.example:7443", caFile: defaultCA, token: "tok-one", from: `context "one" in ` + defaultPath},
		},
		{
			name:  "flags beat env and config",
			flags: all,
			env:   map[string]string{"HOME": home, envAddr: "env.example:1", envCAFile: "/env/ca.pem", envToken: "tok-env"},
			want:  settings{address: "flag.example:1", caFile: "/flag/ca.pem", token: "tok-flag", from: "--addr"},
		},
		{
			name: "env beats config",
			env:  map[string]string{"HOME": home, envAddr: "env.example:1", envToken: "tok-env"},
			want: settings{address: "env.example:1", caFile: defaultCA, token: "tok-env", from: envAddr},
		},
		{
			name:  "single flag overrides one field only",
			flags: connFlags{token: "tok-flag"},
			env:   map[string]string{"HOME": home},
			want:  settings{address: "one.example:7443", caFile: defaultCA, token: "tok-flag", from: `context "one" in ` + defaultPath},
		},
		{
			name:  "context flag",
			flags: connFlags{context: "two"},
			env:   map[string]string{"HOME": home, envContext: "one"},
			want:  settings{address: "two.example:7443", caFile: "/abs/two-ca.pem", token: "tok-two", from: `context "two" in ` + defaultPath},
		},
		{
			name: "context env",
			env:  map[string]string{"HOME": home, envContext: "two"},
			want: settings{address: "two.example:7443", caFile: "/abs/two-ca.pem", token: "tok-two", from: `context "two" in ` + defaultPath},
		},
		{
			name:  "config flag beats env",
			flags: connFlags{config: other},
			env:   map[string]string{"HOME": home, envConfig: xdgPath},
			want:  settings{address: "other.example:2", caFile: otherCA, token: "tok-o", from: `context "o" in ` + other},
		},
		{
			name: "config env beats default",
			env:  map[string]string{"HOME": home, envConfig: other},
			want: settings{address: "other.example:2", caFile: otherCA, token: "tok-o", from: `context "o" in ` + other},
		},
		{
			name: "XDG_CONFIG_HOME beats HOME",
			env:  map[string]string{"HOME": home, "XDG_CONFIG_HOME": xdg},
			want: settings{address: "xdg.example:1", token: "tok-xdg", from: `context "x" in ` + xdgPath},
		},
		{
			name: "relative XDG_CONFIG_HOME is ignored",
			env:  map[string]string{"HOME": home, "XDG_CONFIG_HOME": "rel"},
			want: settings{address: "one.example:7443", caFile: defaultCA, token: "tok-one", from: `context "one" in ` + defaultPath},
		},
		{
			name:  "missing default file is fine with flags",
			flags: connFlags{addr: "flag.example:1", token: "tok-flag"},
			env:   map[string]string{"HOME": emptyHome},
			want:  settings{address: "flag.example:1", token: "tok-flag", from: "--addr"},
		},
		{
			name:  "broken default file is not read when flags give everything",
			flags: all,
			env:   map[string]string{"XDG_CONFIG_HOME": brokenXDG},
			want:  settings{address: "flag.example:1", caFile: "/flag/ca.pem", token: "tok-flag", from: "--addr"},
		},
		{
			name:    "missing address says how to set it",
			env:     map[string]string{"HOME": emptyHome},
			wantErr: "no control plane address: pass --addr host:port, set FORLOCK_ADDR, or pass --config <data-dir>/forlockctl.yaml",
		},
		{
			name:    "missing token",
			flags:   connFlags{addr: "flag.example:1"},
			env:     map[string]string{"HOME": emptyHome},
			wantErr: "no admin token: pass --token, set FORLOCK_TOKEN",
		},
		{
			name:    "bad address from env",
			env:     map[string]string{"HOME": emptyHome, envAddr: "no-port", envToken: "t"},
			wantErr: "bad control plane address from FORLOCK_ADDR",
			usage:   true,
		},
		{
			name:    "missing explicit config",
			flags:   connFlags{config: filepath.Join(emptyHome, "nope.yaml")},
			env:     map[string]string{"HOME": emptyHome},
			wantErr: "does not exist: check --config / FORLOCK_CONFIG",
		},
		{
			name:    "context without config file",
			flags:   connFlags{context: "prod"},
			env:     map[string]string{"HOME": emptyHome},
			wantErr: `context "prod" was asked for but there is no config file`,
		},
		{
			name:    "unknown context lists names",
			flags:   connFlags{context: "three"},
			env:     map[string]string{"HOME": home},
			wantErr: `context "three" not found: available contexts are one, two`,
		},
		{
			name:    "broken default config is reported when needed",
			flags:   connFlags{addr: "flag.example:1", token: "tok-flag"},
			env:     map[string]string{"XDG_CONFIG_HOME": brokenXDG},
			wantErr: "field bogus not found",
		},
		{
			name:    "zero timeout",
			flags:   connFlags{addr: "a:1", token: "t", timeout: -1},
			wantErr: "--timeout must be positive",
			usage:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.flags.timeout == 0 {
				tt.flags.timeout = defaultTimeout
			}
			got, err := resolveSettings(tt.flags, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				var ue *usageError
				require.Equal(t, tt.usage, errors.As(err, &ue), "usage error")
				return
			}
			require.NoError(t, err)
			tt.want.timeout = defaultTimeout
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDefaultConfigPathNeedsHome(t *testing.T) {
	_, err := defaultConfigPath(func(string) string { return "" })
	require.ErrorContains(t, err, "HOME is not set; pass --config")

	p, err := defaultConfigPath(func(k string) string { return map[string]string{"HOME": "/h"}[k] })
	require.NoError(t, err)
	require.Equal(t, "/h/.config/forlock/forlockctl.yaml", p)
}
