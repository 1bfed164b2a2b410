package agent

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/agent/internal/identity"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// maxTokenFileSize bounds a join token file; a token is under 100 bytes.
const maxTokenFileSize = 4096

// errNoJoinToken reports that no join token is available right now.
var errNoJoinToken = errors.New("no join token")

// enrollError is a failed Enroll call, with what the logs need.
type enrollError struct {
	source  string // where the token came from
	tokenID string // log-safe token ID
	err     error
}

func (e *enrollError) Error() string { return "enroll: " + e.err.Error() }
func (e *enrollError) Unwrap() error { return e.err }

// enroll obtains a node identity with a join token: under the name of the
// current identity if there is one (the control plane then keeps the node
// ID), else under the configured name. The key is reused if the state
// directory has one, else generated; only a CSR leaves the host.
func (a *Agent) enroll(ctx context.Context, store *identity.Store) error {
	token, source, err := a.joinToken()
	if err != nil {
		return err
	}
	name, roots := a.cfg.Name, (*x509.CertPool)(nil)
	prev := a.identity()
	if prev != nil {
		name, roots = prev.Name, prev.CAPool
	}
	if a.cfg.CAFile != "" {
		// Read at every attempt, like the token file: the operator may fix it.
		if roots, err = loadCAFile(a.cfg.CAFile); err != nil {
			return err
		}
	}
	key, created, err := store.LoadOrCreateKey()
	if err != nil {
		return err
	}
	if created {
		a.log.Info("generated a new node key", "file", filepath.Join(store.Dir(), identity.KeyFile))
	}
	csr, err := pki.CreateCSR(key, name)
	if err != nil {
		return err
	}
	conn, err := a.dial(roots, false)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := forlockv1.NewAgentServiceClient(conn).Enroll(cctx, &forlockv1.EnrollRequest{
		JoinToken: token,
		Name:      name,
		Csr:       csr,
		Facts:     a.facts.Collect(),
	})
	if err != nil {
		return &enrollError{source: source, tokenID: tokenID(token), err: err}
	}
	id, err := identity.Build(resp.GetNodeId(), name, key, resp.GetCertificateChain(), resp.GetCaBundle(), time.Now())
	if err != nil {
		return fmt.Errorf("enroll: the control plane's answer is unusable: %w", err)
	}
	if err := store.Save(id); err != nil {
		return err
	}
	a.setIdentity(id)
	a.mu.Lock()
	a.stats.Enrollments++
	a.mu.Unlock()
	a.log.Info("enrolled", "node_id", id.NodeID, "name", name, "token_id", tokenID(token),
		"labels", resp.GetLabels(), "cert_serial", id.Serial(), "cert_not_after", id.Leaf().NotAfter)
	if prev != nil && prev.NodeID != id.NodeID {
		a.log.Warn("re-enrollment gave this host a new node ID", "old_node_id", prev.NodeID, "node_id", id.NodeID)
	}
	return nil
}

// joinToken returns the join token to use now and where it came from. The
// token file, read afresh, wins over the token given directly.
func (a *Agent) joinToken() (token, source string, err error) {
	if path := a.cfg.JoinTokenFile; path != "" {
		token, err := readTokenFile(path)
		if err == nil {
			return token, "join token file " + path, nil
		}
		if a.cfg.JoinToken == "" {
			return "", "", fmt.Errorf("%w: %w", errNoJoinToken, err)
		}
		a.log.Warn("using the join token given directly", "reason", err.Error())
	}
	if a.cfg.JoinToken != "" {
		return a.cfg.JoinToken, "--join-token or " + JoinTokenEnv, nil
	}
	return "", "", errNoJoinToken
}

func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("join token file: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFileSize+1))
	if err != nil {
		return "", fmt.Errorf("join token file %s: %w", path, err)
	}
	token := strings.TrimSpace(string(data))
	switch {
	case len(data) > maxTokenFileSize:
		return "", fmt.Errorf("join token file %s is larger than %d bytes: it should hold only the token", path, maxTokenFileSize)
	case token == "":
		return "", fmt.Errorf("join token file %s is empty", path)
	case strings.ContainsFunc(token, isSpaceOrControl):
		return "", fmt.Errorf("join token file %s holds more than the token: put only the token in it", path)
	}
	return token, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet CA bundle (--ca-file): %w", err)
	}
	certs, err := pki.ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("fleet CA bundle %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// tokenID is the control plane's log-safe ID of a join token: the first 12
// hex digits of its SHA-256. The token itself is never logged.
func tokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}

// logEnrollError logs a failed enrollment attempt: a refusal with the
// control plane's reason and what to do, anything else as a retryable
// failure.
func (a *Agent) logEnrollError(err error, retryMax time.Duration) {
	retry := "retry_in_max"
	var ee *enrollError
	if !errors.As(err, &ee) {
		a.log.Error("cannot enroll", "error", err.Error(), retry, retryMax.String())
		return
	}
	st := status.Convert(ee.err)
	attrs := []any{"code", st.Code().String(), "reason", st.Message(), "token_id", ee.tokenID,
		"token_source", ee.source, retry, retryMax.String()}
	switch st.Code() {
	case codes.AlreadyExists:
		a.log.Error("enrollment refused: this node name belongs to a registered node with another key (see reason for the way out)", attrs...)
	case codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied:
		hint := "enrollment refused: give the agent a fresh join token (--join-token-file)"
		if a.cfg.JoinTokenFile != "" {
			hint = "enrollment refused: put a fresh join token into " + a.cfg.JoinTokenFile
		}
		a.log.Error(hint, attrs...)
	default:
		a.log.Warn("enrollment failed", attrs...)
	}
}
