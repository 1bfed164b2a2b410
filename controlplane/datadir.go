package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/forlock/fleet/controlplane/internal/datadir"
	"github.com/forlock/fleet/internal/atomicfile"
	"github.com/forlock/fleet/internal/pki"
)

// Files in the data dir.
const (
	caCertFile     = datadir.CACert
	caKeyFile      = datadir.CAKey
	serverCertFile = datadir.ServerCert
	serverKeyFile  = datadir.ServerKey
	dbFile         = datadir.DB
	ctlConfigFile  = datadir.CtlConfig
	kekFile        = datadir.KEK
)

const serverCertTTL = 365 * 24 * time.Hour

// prepareDataDir creates the data dir with mode 0700 or checks that an
// existing one is not readable by others.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("data dir %s has mode %o: it holds the fleet CA key; run chmod 700 %s", dir, st.Mode().Perm(), dir)
	}
	return nil
}

// loadOrCreateCA loads the fleet CA from the data dir or creates it.
func loadOrCreateCA(dir string, now time.Time) (*pki.CA, bool, error) {
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := pki.LoadCA(certPEM, keyPEM)
		if err != nil {
			return nil, false, fmt.Errorf("load fleet CA from %s: %w", dir, err)
		}
		return ca, false, nil
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
	default:
		return nil, false, fmt.Errorf("fleet CA in %s is incomplete (need both %s and %s): restore them from backup", dir, caCertFile, caKeyFile)
	}
	ca, err := pki.NewCA(now, "Forlock Fleet CA")
	if err != nil {
		return nil, false, err
	}
	keyPEM, err = ca.KeyPEM()
	if err != nil {
		return nil, false, err
	}
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := atomicfile.Write(certPath, ca.CertPEM(), 0o644); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// loadOrIssueServerCert reuses the server certificate if it is signed by ca,
// names exactly the wanted SANs and has more than a third of its life left;
// otherwise it issues a new one.
func loadOrIssueServerCert(dir string, ca *pki.CA, names []string, now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile)
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && serverCertUsable(c.Leaf, ca, names, now) {
		return c, nil
	}
	key, err := pki.GenerateKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := ca.IssueServer(now, names, key, serverCertTTL)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.Write(certPath, pki.EncodeCertPEM(cert.Raw), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

func serverCertUsable(c *x509.Certificate, ca *pki.CA, names []string, now time.Time) bool {
	if c == nil || c.CheckSignatureFrom(ca.Certificate()) != nil {
		return false
	}
	if c.NotAfter.Sub(now) < c.NotAfter.Sub(c.NotBefore)/3 {
		return false
	}
	var have []string
	have = append(have, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		have = append(have, ip.String())
	}
	want := slices.Clone(names)
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}
