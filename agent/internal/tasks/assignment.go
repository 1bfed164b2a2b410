package tasks

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Assignment is everything a handler is given to run one task: which task
// of which job, what to do, and the secrets the control plane sent for this
// task only. The context a handler gets carries deadlines, cancellation and
// nothing else.
//
// Formatting an Assignment with fmt (any verb) or slog, or marshalling it
// as JSON, shows the IDs, the kind, the key names and whether a
// certificate came, never a key.
type Assignment struct {
	// JobID is the job the task belongs to; TaskID the task.
	JobID, TaskID string
	// Spec says what to do; its kind picked the handler.
	Spec *forlockv1.JobSpec
	// Keys are the data keys of the task: for a backup one per artifact
	// kind (named "postgres", "redis", "config"), for a restore one per
	// artifact (named by artifact ID); an upgrade's are its pre-upgrade
	// backup's. They hold plain keys: a handler uses them in memory only,
	// never logs, journals or writes them. The runner wipes them when the
	// handler returns.
	Keys []*forlockv1.TaskKey
	// Certificate is the pair a cert_rotate task installs, or nil. It
	// holds a private key: a handler uses it in memory only and writes it
	// nowhere but nginx. The runner drops the key when the handler
	// returns.
	Certificate *forlockv1.CertificatePair
}

// assignmentOf is the Assignment of a control-plane message.
func assignmentOf(m *forlockv1.TaskAssignment) Assignment {
	return Assignment{JobID: m.GetJobId(), TaskID: m.GetTaskId(), Spec: m.GetSpec(), Keys: m.GetKeys(), Certificate: m.GetCertificate()}
}

// Kind is the kind of the assignment's spec.
func (a Assignment) Kind() protocol.Kind { return protocol.KindOf(a.Spec) }

// wipe overwrites the plain keys in place and drops the certificate's
// private key (a string cannot be overwritten; the message no longer
// refers to it), once the task is over.
func (a Assignment) wipe() {
	for _, k := range a.Keys {
		clear(k.GetPlainKey())
	}
	if a.Certificate != nil {
		a.Certificate.PrivateKeyPem = ""
	}
}

// keyNames lists the names of the keys, not the keys.
func (a Assignment) keyNames() []string {
	names := make([]string, 0, len(a.Keys))
	for _, k := range a.Keys {
		names = append(names, k.GetName())
	}
	return names
}

// String describes the assignment without its secrets.
func (a Assignment) String() string {
	cert := "none"
	if a.Certificate != nil {
		cert = "redacted"
	}
	return fmt.Sprintf("tasks.Assignment{job: %s, task: %s, kind: %s, keys: [%s] redacted, certificate: %s}",
		a.JobID, a.TaskID, a.Kind(), strings.Join(a.keyNames(), " "), cert)
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %x, ...) print String.
func (a Assignment) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(a.String())) }

// LogValue keeps the secrets out of slog output.
func (a Assignment) LogValue() slog.Value {
	return slog.GroupValue(slog.String("job_id", a.JobID), slog.String("task_id", a.TaskID),
		slog.String("kind", string(a.Kind())), slog.Any("keys", a.keyNames()),
		slog.Bool("certificate", a.Certificate != nil))
}

// MarshalJSON writes String, so an Assignment inside a logged struct does
// not leak its secrets either. Assignments travel in protobuf messages,
// never as JSON.
func (a Assignment) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }
