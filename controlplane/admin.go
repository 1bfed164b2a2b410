package controlplane

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/forlock/fleet/controlplane/internal/tokens"
	"github.com/forlock/fleet/internal/ctlconfig"
)

// ctlContextName is the context written into the generated forlockctl config.
const ctlContextName = "local"

// ensureAdmin makes sure an admin credential exists. On first start it makes
// one, stores only its hash and writes the token into forlockctl.yaml (0600).
// Later starts refresh the address and CA path in that file and keep its
// token. With RotateAdminToken a new token replaces the old one.
func (s *Server) ensureAdmin(addr string) error {
	hash, err := s.store.AdminTokenHash()
	if err != nil {
		return err
	}
	if hash == nil || s.cfg.RotateAdminToken {
		tok, err := tokens.NewAdmin()
		if err != nil {
			return err
		}
		if err := s.writeCtlConfig(addr, tok.Secret); err != nil {
			return err
		}
		if err := s.store.SetAdminTokenHash(tok.Hash); err != nil {
			return err
		}
		s.admin = tok.Hash
		s.log.Info("wrote a new admin credential; use forlockctl --config "+s.ctlConfig, "path", s.ctlConfig)
		return nil
	}
	s.admin = hash
	f, err := ctlconfig.Load(s.ctlConfig)
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("forlockctl config is missing and the admin token cannot be shown again; restart with --rotate-admin-token to make a new one", "path", s.ctlConfig)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w (fix it, or delete it and restart with --rotate-admin-token)", err)
	}
	c, err := f.Context(ctlContextName)
	if err != nil {
		return nil // an operator rewrote the file: leave it alone
	}
	if c.Address == addr && c.CAFile == s.CAFile() {
		return nil
	}
	return s.writeCtlConfig(addr, c.Token)
}

func (s *Server) writeCtlConfig(addr, token string) error {
	f := &ctlconfig.File{
		Version:        ctlconfig.Version,
		CurrentContext: ctlContextName,
		Contexts:       []ctlconfig.Context{{Name: ctlContextName, Address: addr, CAFile: s.CAFile(), Token: token}},
	}
	if err := f.Write(s.ctlConfig); err != nil {
		return fmt.Errorf("write forlockctl config: %w", err)
	}
	return nil
}
