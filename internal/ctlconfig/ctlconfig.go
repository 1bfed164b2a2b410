// Package ctlconfig reads and writes forlockctl's client configuration file.
//
// The control plane writes the file on its first start (into its data
// directory) so that an operator can point forlockctl at it with
// `--config <data-dir>/forlockctl.yaml`; forlockctl reads it from
// `$XDG_CONFIG_HOME/forlock/forlockctl.yaml` by default. The file holds named
// contexts, each with everything needed to reach one control plane:
//
//	version: 1
//	current-context: prod
//	contexts:
//	  - name: prod
//	    address: cp.example.net:7443
//	    ca-file: ca.pem          # relative paths are relative to this file
//	    token: <admin token>
//
// Parsing is strict: unknown fields, a missing or unknown version, duplicate
// or empty context names and malformed addresses are errors that name the
// field and say how to fix it. The file holds a secret, so Write creates it
// with mode 0600.
package ctlconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Version is the only file format version this package reads and writes.
const Version = 1

// MaxSize is the largest configuration file Parse accepts, in bytes.
const MaxSize = 1 << 20

// File is the whole configuration file.
type File struct {
	// Version of the file format; must be Version.
	Version int `yaml:"version"`
	// CurrentContext names the context used when none is chosen explicitly.
	// Empty is allowed; see File.Context.
	CurrentContext string `yaml:"current-context"`
	// Contexts, each with a unique name.
	Contexts []Context `yaml:"contexts"`
}

// Context holds the settings to reach one control plane.
type Context struct {
	// Name chosen by the operator, unique within the file.
	Name string `yaml:"name"`
	// Address of the control plane's public gRPC API as host:port.
	Address string `yaml:"address"`
	// CAFile is a PEM file with the CA certificates that verify the control
	// plane's TLS certificate. Empty means the system's trust store. Load
	// resolves a relative path against the configuration file's directory.
	CAFile string `yaml:"ca-file"`
	// Token is the admin bearer token sent with every call.
	Token string `yaml:"token"`
}

// Parse decodes and validates a configuration file. It rejects unknown
// fields, more than one YAML document, and files larger than MaxSize.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("config is %d bytes, more than the limit of %d: is this the right file?", len(data), MaxSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config is empty: it needs at least \"version: %d\"", Version)
		}
		return nil, fmt.Errorf("decode config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("config holds more than one YAML document: keep only one")
	}
	if len(f.Contexts) == 0 {
		f.Contexts = nil // "contexts: []" and no contexts mean the same
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Validate checks the file the way Parse does.
func (f *File) Validate() error {
	switch f.Version {
	case Version:
	case 0:
		return fmt.Errorf("config has no version: add \"version: %d\" at the top", Version)
	default:
		return fmt.Errorf("config version %d is not supported: this build reads version %d", f.Version, Version)
	}
	seen := make(map[string]bool, len(f.Contexts))
	for i := range f.Contexts {
		c := &f.Contexts[i]
		if err := c.validate(); err != nil {
			if c.Name == "" {
				return fmt.Errorf("contexts[%d]: %w", i, err)
			}
			return fmt.Errorf("contexts[%d] (%q): %w", i, c.Name, err)
		}
		if seen[c.Name] {
			return fmt.Errorf("contexts[%d]: name %q is used twice: give each context its own name", i, c.Name)
		}
		seen[c.Name] = true
	}
	if f.CurrentContext != "" && !seen[f.CurrentContext] {
		return fmt.Errorf("current-context %q names no context: set it to one of %s", f.CurrentContext, nameList(f.Contexts))
	}
	return nil
}
