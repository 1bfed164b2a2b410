package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/logs"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/wal"
	"github.com/forlock/fleet/internal/buildinfo"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// maxFactLen bounds each string of host facts sent by an agent.
const maxFactLen = 256

// AgentAPI implements forlockv1.AgentService.
type AgentAPI struct {
	forlockv1.UnsafeAgentServiceServer

	Store    AgentStore
	Registry *registry.Registry
	Jobs     *jobs.Engine
	Broker   *logs.Broker
	CA       *pki.CA
	CertTTL  time.Duration
	// CertGrace is how long the certificate before a renewal stays valid.
	CertGrace time.Duration
	Log       *slog.Logger
	// Hooks inject faults into enrollment; tests only.
	Hooks EnrollHooks
	// EnrollFailed, if set, counts every refused enrollment by reason, one
	// of a fixed set: token_malformed, token_unknown, invalid_request and
	// enroll.Refusal's names without "refused-" (the metrics).
	EnrollFailed func(reason string)
	// Gate counts refused join tokens per client address; nil: none.
	Gate AuthGate
	// Stream bounds the control messages of each agent stream.
	Stream StreamLimits
	// ArchiveKeys issues each node's WAL archive key, sent after the
	// ServerHello and again when it rotates; WAL takes the agents' WAL
	// reports. Nil: no WAL archiving.
	ArchiveKeys *wal.Keys
	WAL         *wal.Archive
}

// EnrollHooks let tests lose an enrollment's answer or delay its commit.
type EnrollHooks struct {
	// BeforeCommit runs inside the store transaction, after the
	// certificate is signed and before the commit.
	BeforeCommit func(ctx context.Context, name string)
	// AfterCommit runs after the enrollment committed, before its answer
	// is sent; an error fails the call as if the answer were lost.
	AfterCommit func(ctx context.Context, nodeID string) error
}

func newNodeID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

func validateFacts(f *forlockv1.HostFacts) error {
	// Runs on every heartbeat: no allocation.
	for _, fv := range [...]struct{ name, v string }{
		{"hostname", f.GetHostname()}, {"os", f.GetOs()}, {"kernel", f.GetKernel()},
		{"arch", f.GetArch()}, {"agent_version", f.GetAgentVersion()},
	} {
		if len(fv.v) > maxFactLen {
			return invalid("host facts: %s longer than %d bytes", fv.name, maxFactLen)
		}
	}
	return nil
}

func serverVersion() string { return buildinfo.Version() }
