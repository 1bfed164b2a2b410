package certs

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/tasks"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Handler runs the cert_rotate task: it installs the pair the control plane
// sent with the assignment (tasks.Assignment.Certificate) with Install, and
// reports the certificate nginx now serves.
//
// The task fails, with Install's words, when the pair is invalid or any
// step fails; it ends ROLLED_BACK when nginx refused the new pair or did
// not serve it and the old one is back and served again.
type Handler struct {
	// Config is Install's. With no Names, the names of the certificate the
	// control plane sent are the ones it must cover (every other check
	// still applies).
	Config Config
	// Unavailable, when set, says why the node's containers cannot be
	// reached (the Docker client could not be set up): the task fails with
	// it and changes nothing.
	Unavailable string
}

// Run installs the assignment's pair.
func (h Handler) Run(ctx context.Context, a tasks.Assignment, report func(*forlockv1.Progress)) (tasks.Result, error) {
	cp := a.Certificate
	if cp.GetCertificatePem() == "" && cp.GetPrivateKeyPem() == "" {
		return tasks.Result{}, errors.New("the control plane sent no certificate with the task: nothing was changed; run the rotation again, and if it keeps failing check the control plane's Vault settings")
	}
	if h.Unavailable != "" {
		return tasks.Result{}, fmt.Errorf("%s; nothing was changed", h.Unavailable)
	}
	pair := Pair{CertPEM: []byte(cp.GetCertificatePem()), KeyPEM: []byte(cp.GetPrivateKeyPem()), ChainPEM: []byte(cp.GetChainPem())}
	defer clear(pair.KeyPEM) // this copy of the key lives only as long as the task
	cfg := h.Config
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	if len(cfg.Names) == 0 {
		// Validate without names first: the names to require are the
		// certificate's own.
		leaf, err := Validate(pair, nil, now())
		if err != nil {
			return tasks.Result{}, clipped(fmt.Errorf("%w; nothing was changed", err))
		}
		if cfg.Names = certNames(leaf); len(cfg.Names) == 0 {
			return tasks.Result{}, clipped(invalid("certificate (serial %s) names no DNS name or IP address (subject alternative names): nginx clients would refuse it; issue it with the node's names; nothing was changed",
				SerialHex(leaf.SerialNumber)))
		}
	}

	report(&forlockv1.Progress{Phase: "installing the certificate into nginx", Message: "validate, write, nginx -t, reload, confirm by handshake"})
	res, err := Install(ctx, cfg, pair)
	switch {
	case errors.Is(err, ErrInvalid):
		return tasks.Result{}, clipped(fmt.Errorf("%w; nothing was changed", err))
	case err != nil:
		rolledBack := (errors.Is(err, ErrRejected) || errors.Is(err, ErrNotServed)) && !errors.Is(err, ErrRollback)
		return tasks.Result{RolledBack: rolledBack}, clipped(err)
	}

	info := Proto(firstCert(pair.CertPEM))
	info.Source = cp.GetSource()
	info.RotatedAt = timestamppb.New(now())
	until := res.New.NotAfter.UTC()
	old := canonicalSerial(res.Old.Serial)
	if old == "" {
		old = "none"
	}
	return tasks.Result{
		Message: fmt.Sprintf("nginx serves %s until %s", info.GetSerial(), until.Format(time.RFC3339)),
		Details: []string{
			fmt.Sprintf("serial %s -> %s", old, info.GetSerial()),
			clip(fmt.Sprintf("subject %s, issuer %s, %s, names %s", info.GetSubject(), info.GetIssuer(), info.GetKeyType(), strings.Join(info.GetNames(), ", "))),
			fmt.Sprintf("valid until %s (%d days)", until.Format(time.RFC3339), int(until.Sub(now()).Hours()/24)),
			fmt.Sprintf("confirmed by a TLS handshake with %s %s after the reload", cfg.Addr, res.ConfirmedAfter.Round(time.Millisecond)),
		},
		Certificate: info,
	}, nil
}

// canonicalSerial turns SerialHex's colon form into the control plane's
// (pki.SerialHex: lower-case hex, no colons, no leading zeros).
func canonicalSerial(colon string) string {
	if colon == "" {
		return ""
	}
	n, ok := new(big.Int).SetString(strings.ReplaceAll(colon, ":", ""), 16)
	if !ok {
		return colon
	}
	return n.Text(16)
}

// maxText bounds a task's message and each detail line: the control plane
// refuses longer ones (a certificate may have hundreds of names).
const maxText = 4000

// clip cuts s to at most maxText bytes on a rune boundary, marking the cut.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	cut := maxText - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// clipped returns err with its text cut to maxText; errors.Is still sees
// what it wraps.
func clipped(err error) error {
	if len(err.Error()) <= maxText {
		return err
	}
	return clippedError{err: err, msg: clip(err.Error())}
}

type clippedError struct {
	err error
	msg string
}

func (e clippedError) Error() string { return e.msg }
func (e clippedError) Unwrap() error { return e.err }
