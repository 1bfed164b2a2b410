package ctlconfig

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/forlock/fleet/internal/atomicfile"
)

// Load reads and parses the file at path. Relative ca-file paths in its
// contexts are resolved against the directory that holds the file.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer func() { _ = fh.Close() }()
	// Read one byte past the limit so Parse can report an oversized file.
	data, err := io.ReadAll(io.LimitReader(fh, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for i := range f.Contexts {
		ca := f.Contexts[i].CAFile
		if ca != "" && !filepath.IsAbs(ca) {
			f.Contexts[i].CAFile = filepath.Join(dir, ca)
		}
	}
	return f, nil
}

// Write validates f and stores it at path with atomicfile.Write (temporary
// file, fsync, rename, fsync of the directory). The file gets mode 0600 and
// a missing parent directory is created with mode 0700.
func (f *File) Write(path string) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	data, err := yaml.Marshal(f)
	if err != nil {
		return fmt.Errorf("write config %s: encode: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// Context returns the context called name, or the current context when
// name is empty. When no current-context is set and the file has exactly one
// context, that context is the current one. The returned pointer refers into
// f.Contexts.
func (f *File) Context(name string) (*Context, error) {
	if name == "" {
		name = f.CurrentContext
		if name == "" {
			if len(f.Contexts) == 1 {
				return &f.Contexts[0], nil
			}
			if len(f.Contexts) == 0 {
				return nil, errors.New("config defines no contexts: add one under \"contexts:\"")
			}
			return nil, fmt.Errorf("config sets no current-context: choose one of %s with --context or set current-context", nameList(f.Contexts))
		}
	}
	for i := range f.Contexts {
		if f.Contexts[i].Name == name {
			return &f.Contexts[i], nil
		}
	}
	return nil, fmt.Errorf("context %q not found: available contexts are %s", name, nameList(f.Contexts))
}
