package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/forlock/fleet/internal/ctlconfig"
)

// Environment variables that override the configuration file.
const (
	envAddr    = "FORLOCK_ADDR"
	envCAFile  = "FORLOCK_CA_FILE"
	envToken   = "FORLOCK_TOKEN"
	envContext = "FORLOCK_CONTEXT"
	envConfig  = "FORLOCK_CONFIG"
	envReason  = "FORLOCK_REASON"
)

const defaultTimeout = 30 * time.Second

// maxReason is the control plane's limit on a change reason.
const maxReason = 256

// reasonHeader carries the change reason (the control plane's
// api.ReasonHeader).
const reasonHeader = "x-forlock-reason"

// connFlags are the global connection flags as given on the command line.
type connFlags struct {
	addr, caFile, token, context, config string
	timeout                              time.Duration
	reason                               string
}

func (f *connFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.addr, "addr", "", "control plane address host:port (env "+envAddr+")")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM CA certificates that verify the control plane (env "+envCAFile+"; default: system trust store)")
	fs.StringVar(&f.token, "token", "", "admin bearer token (env "+envToken+")")
	fs.StringVar(&f.context, "context", "", "context from the config file to use (env "+envContext+"; default: current-context)")
	fs.StringVar(&f.config, "config", "", "config file (env "+envConfig+"; default $XDG_CONFIG_HOME/forlock/forlockctl.yaml)")
	fs.DurationVar(&f.timeout, "timeout", defaultTimeout, "deadline for each call to the control plane")
	fs.StringVar(&f.reason, "reason", "", "why you make this change (e.g. a ticket ID): recorded with it in the audit log and the job (env "+envReason+")")
}

// settings is the resolved connection: where to dial, whom to trust, what
// token to send.
type settings struct {
	address string
	caFile  string // empty: the system trust store
	token   string
	timeout time.Duration
	// reason is sent with every call as the change reason.
	reason string
	// from says where the address came from, for error messages.
	from string
}

// resolveSettings applies the precedence flag > environment > config file
// context. The config file is read only when the flags and environment leave
// something unset or name a file or context explicitly; a missing default
// file is not an error.
func resolveSettings(f connFlags, getenv func(string) string) (settings, error) {
	if f.timeout <= 0 {
		return settings{}, usageErrorf("--timeout must be positive, e.g. --timeout 30s")
	}
	s := settings{timeout: f.timeout}
	s.reason, _ = pick(f.reason, "", getenv, envReason)
	if len(s.reason) > maxReason {
		return settings{}, usageErrorf("--reason is %d bytes long: use at most %d", len(s.reason), maxReason)
	}
	var addrFrom string
	s.address, addrFrom = pick(f.addr, "--addr", getenv, envAddr)
	s.caFile, _ = pick(f.caFile, "", getenv, envCAFile)
	s.token, _ = pick(f.token, "", getenv, envToken)
	ctxName, _ := pick(f.context, "", getenv, envContext)
	path, _ := pick(f.config, "", getenv, envConfig)
	explicit := path != ""
	s.from = addrFrom

	if explicit || ctxName != "" || s.address == "" || s.caFile == "" || s.token == "" {
		if !explicit {
			var err error
			if path, err = defaultConfigPath(getenv); err != nil && ctxName != "" {
				return settings{}, err
			}
		}
		if path != "" {
			if err := fillFromConfig(&s, path, ctxName, explicit); err != nil {
				return settings{}, err
			}
		}
	}

	if s.address == "" {
		return settings{}, errors.New("no control plane address: pass --addr host:port, set " + envAddr +
			", or pass --config <data-dir>/forlockctl.yaml (the control plane writes that file on first start)")
	}
	if err := ctlconfig.ValidateAddress(s.address); err != nil {
		return settings{}, usageErrorf("bad control plane address from %s: %w", s.from, err)
	}
	if s.token == "" {
		return settings{}, errors.New("no admin token: pass --token, set " + envToken +
			", or use a config context that has a token")
	}
	return s, nil
}

// fillFromConfig fills the unset fields of s from a context of the file.
func fillFromConfig(s *settings, path, ctxName string, explicit bool) error {
	cfg, err := ctlconfig.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		switch {
		case explicit:
			return fmt.Errorf("config file %s does not exist: check --config / %s", path, envConfig)
		case ctxName != "":
			return fmt.Errorf("context %q was asked for but there is no config file at %s: pass --config", ctxName, path)
		default:
			return nil
		}
	}
	if err != nil {
		return err
	}
	c, err := cfg.Context(ctxName)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if s.address == "" {
		s.address = c.Address
		s.from = fmt.Sprintf("context %q in %s", c.Name, path)
	}
	if s.caFile == "" {
		s.caFile = c.CAFile
	}
	if s.token == "" {
		s.token = c.Token
	}
	return nil
}

// pick returns the flag value if set, else the environment variable, and
// names the source it used.
func pick(flagVal, flagName string, getenv func(string) string, env string) (string, string) {
	if flagVal != "" {
		return flagVal, flagName
	}
	return getenv(env), env
}

// defaultConfigPath is $XDG_CONFIG_HOME/forlock/forlockctl.yaml, else
// $HOME/.config/forlock/forlockctl.yaml. A relative XDG_CONFIG_HOME is
// ignored, as the XDG spec says.
func defaultConfigPath(getenv func(string) string) (string, error) {
	if x := getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "forlock", "forlockctl.yaml"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("cannot find the default config file: HOME is not set; pass --config")
	}
	return filepath.Join(home, ".config", "forlock", "forlockctl.yaml"), nil
}
