package ctlconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const good = `version: 1
current-context: prod
contexts:
  - name: prod
    address: cp.example.net:7443
    ca-file: ca.pem
    token: s3cret
  - name: lab
    address: "[::1]:7443"
    ca-file: /etc/forlock/ca.pem
    token: other
`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; empty means success
	}{
		{name: "good", in: good},
		{name: "no contexts", in: "version: 1\n"},
		{name: "single context without current", in: "version: 1\ncontexts: [{name: a, address: 'h:1'}]\n"},
		{name: "empty", in: "", wantErr: "config is empty"},
		{name: "comment only", in: "# nothing\n", wantErr: "config is empty"},
		{name: "missing version", in: "contexts: []\n", wantErr: `add "version: 1"`},
		{name: "future version", in: "version: 2\n", wantErr: "version 2 is not supported"},
		{name: "unknown top field", in: "version: 1\ncurrent_context: x\n", wantErr: "field current_context not found"},
		{name: "unknown context field", in: "version: 1\ncontexts: [{name: a, address: 'h:1', tokn: x}]\n", wantErr: "field tokn not found"},
		{name: "wrong type", in: "version: one\n", wantErr: "decode config"},
		{name: "two documents", in: "version: 1\n---\nversion: 1\n", wantErr: "more than one YAML document"},
		{name: "empty name", in: "version: 1\ncontexts: [{address: 'h:1'}]\n", wantErr: "contexts[0]: name is empty"},
		{name: "bad name", in: "version: 1\ncontexts: [{name: 'a b', address: 'h:1'}]\n", wantErr: "use letters, digits"},
		{name: "duplicate name", in: "version: 1\ncontexts: [{name: a, address: 'h:1'}, {name: a, address: 'h:2'}]\n", wantErr: `name "a" is used twice`},
		{name: "missing address", in: "version: 1\ncontexts: [{name: a}]\n", wantErr: "address is empty"},
		{name: "address without port", in: "version: 1\ncontexts: [{name: a, address: host}]\n", wantErr: "is not host:port"},
		{name: "address without host", in: "version: 1\ncontexts: [{name: a, address: ':7443'}]\n", wantErr: "has no host"},
		{name: "address port zero", in: "version: 1\ncontexts: [{name: a, address: 'h:0'}]\n", wantErr: "port must be a number"},
		{name: "address port too big", in: "version: 1\ncontexts: [{name: a, address: 'h:70000'}]\n", wantErr: "port must be a number"},
		{name: "address url", in: "version: 1\ncontexts: [{name: a, address: 'https://h:1'}]\n", wantErr: "address"},
		{name: "token with space", in: "version: 1\ncontexts: [{name: a, address: 'h:1', token: 'a b'}]\n", wantErr: "token holds spaces"},
		{name: "unknown current", in: "version: 1\ncurrent-context: b\ncontexts: [{name: a, address: 'h:1'}]\n", wantErr: `current-context "b" names no context: set it to one of a`},
		{name: "too big", in: "version: 1\n#" + strings.Repeat("x", MaxSize), wantErr: "more than the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, f)
				return
			}
			require.NoError(t, err)
			require.Equal(t, Version, f.Version)
		})
	}
}

func TestContext(t *testing.T) {
	f, err := Parse([]byte(good))
	require.NoError(t, err)

	tests := []struct {
		name     string
		file     *File
		ctx      string
		wantAddr string
		wantErr  string
	}{
		{name: "current", file: f, ctx: "", wantAddr: "cp.example.net:7443"},
		{name: "named", file: f, ctx: "lab", wantAddr: "[::1]:7443"},
		{name: "unknown lists names", file: f, ctx: "nope", wantErr: `context "nope" not found: available contexts are prod, lab`},
		{name: "no contexts", file: &File{Version: 1}, wantErr: "defines no contexts"},
		{name: "only one", file: &File{Version: 1, Contexts: []Context{{Name: "x", Address: "h:1"}}}, wantAddr: "h:1"},
		{
			name:    "no current among many",
			file:    &File{Version: 1, Contexts: []Context{{Name: "x", Address: "h:1"}, {Name: "y", Address: "h:2"}}},
			wantErr: "choose one of x, y with --context",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.file.Context(tt.ctx)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantAddr, c.Address)
		})
	}
}

func TestLoadResolvesRelativeCAFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "forlockctl.yaml")
	require.NoError(t, os.WriteFile(path, []byte(good), 0o600))

	f, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "ca.pem"), f.Contexts[0].CAFile)
	require.Equal(t, "/etc/forlock/ca.pem", f.Contexts[1].CAFile)
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "forlockctl.yaml")
	require.NoError(t, os.WriteFile(path, []byte("version: 3\n"), 0o600))

	_, err := Load(path)
	require.ErrorContains(t, err, path+": config version 3 is not supported")

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "forlockctl.yaml")
	want := &File{
		Version:        Version,
		CurrentContext: "default",
		Contexts:       []Context{{Name: "default", Address: "127.0.0.1:7443", CAFile: "/data/ca.pem", Token: "tok"}},
	}
	require.NoError(t, want.Write(path))

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	dst, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), dst.Mode().Perm())

	got, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, want, got)

	// Overwrite in place and leave no temporary files behind.
	want.Contexts[0].Token = "rotated"
	require.NoError(t, want.Write(path))
	got, err = Load(path)
	require.NoError(t, err)
	require.Equal(t, "rotated", got.Contexts[0].Token)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
}

func TestWriteRejectsInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "forlockctl.yaml")
	err := (&File{Version: Version, Contexts: []Context{{Name: "a"}}}).Write(path)
	require.ErrorContains(t, err, "address is empty")
	_, statErr := os.Stat(path)
	require.ErrorIs(t, statErr, os.ErrNotExist)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("version: 1\n"))
	f.Add([]byte("version: 1\ncontexts: [{name: a, address: 'h:1', ca-file: x, token: y}]\n"))
	f.Add([]byte("version: 1\ncurrent-context: a\ncontexts: [{name: a, address: '[fe80::1%eth0]:1'}]\n"))
	f.Add([]byte("version: 1\ncontexts: [{name: a, address: 'h:1', ca-file: !!binary gIA=}]\n"))
	f.Add([]byte("&a version: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		out, err := yaml.Marshal(cfg)
		require.NoError(t, err)
		again, err := Parse(out)
		require.NoError(t, err, "re-parse of:\n%s", out)
		require.Equal(t, cfg, again)
	})
}
