package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/forlock/fleet/controlplane/internal/registry"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// CertSource makes the certificate a node gets in a cert_rotate task, e.g.
// by issuing it from Vault PKI or reading it from Vault KV. The pair is
// sent to the agent and never stored by the control plane.
type CertSource interface {
	NodeCertificate(ctx context.Context, node Node, spec *forlockv1.CertRotateSpec) (*forlockv1.CertificatePair, error)
}

// Node names a task's target node for a CertSource.
type Node struct {
	ID, Name string
}

// materialTimeout bounds making the keys or certificate of one assignment:
// Vault may be slow or down, and the task then fails with Vault's error.
const materialTimeout = 30 * time.Second

// material is what a task needs besides its spec: made for one assignment,
// sent, and forgotten.
type material struct {
	keys []*forlockv1.TaskKey
	cert *forlockv1.CertificatePair
}

// needsMaterial reports the kinds whose assignment needs keys or a
// certificate, made by a key wrapper or Vault, possibly over the network.
func needsMaterial(spec *forlockv1.JobSpec) bool {
	switch spec.GetKind().(type) {
	case *forlockv1.JobSpec_Backup, *forlockv1.JobSpec_Restore, *forlockv1.JobSpec_VerifyBackup, *forlockv1.JobSpec_CertRotate:
		return true
	case *forlockv1.JobSpec_Upgrade:
		return !spec.GetUpgrade().GetSkipBackup()
	}
	return false
}

// makeMaterial makes a task's material. It runs without e.mu.
func (e *Engine) makeMaterial(spec *forlockv1.JobSpec, t *forlockv1.Task) (material, error) {
	ctx, cancel := context.WithTimeout(context.Background(), materialTimeout)
	defer cancel()
	if rot := spec.GetCertRotate(); rot != nil {
		if e.certSrc == nil {
			return material{}, fmt.Errorf("this control plane has no certificate source: configure vault")
		}
		pair, err := e.certSrc.NodeCertificate(ctx, Node{ID: t.GetNodeId(), Name: t.GetNodeName()}, rot)
		if err != nil {
			return material{}, fmt.Errorf("certificate for node %s: %w", t.GetNodeName(), err)
		}
		return material{cert: pair}, nil
	}
	keys, err := e.taskKeys(ctx, spec)
	return material{keys: keys}, err
}

// withMaterial makes a task's material in a goroutine, outside the engine
// lock, and then calls then with e.mu held. Callers hold e.mu.
func (e *Engine) withMaterial(j *job, t *forlockv1.Task, then func(material, error)) {
	spec := j.pb.GetSpec()
	e.prep.Add(1)
	go func() {
		defer e.prep.Done()
		m, err := e.makeMaterial(spec, t)
		e.mu.Lock()
		defer e.mu.Unlock()
		then(m, err)
	}()
}

// prepareAndSend makes a task's material, then sends the assignment if the
// task may still start. The task counts as active meanwhile. Callers hold
// e.mu.
func (e *Engine) prepareAndSend(j *job, t *forlockv1.Task) {
	e.preparing[t.GetId()] = struct{}{}
	e.withMaterial(j, t, func(m material, err error) {
		delete(e.preparing, t.GetId())
		if t.GetState() != forlockv1.TaskState_TASK_STATE_QUEUED || j.pb.GetState() != forlockv1.JobState_JOB_STATE_RUNNING {
			return // cancelled meanwhile
		}
		if err != nil {
			e.setTask(j, t, forlockv1.TaskState_TASK_STATE_FAILED, "not started: "+err.Error())
			e.schedule(j)
			return
		}
		sess := e.reg.Session(t.GetNodeId())
		if sess == nil || !sess.Can(j.kind().Capability()) || !sess.Send(e.assignment(j, t, m)) {
			return // gone or busy: the next pass tries again with fresh material
		}
		e.setTask(j, t, forlockv1.TaskState_TASK_STATE_DISPATCHED, "sent to the agent")
	})
}

// assignment builds the message that sends a task to its agent.
func (e *Engine) assignment(j *job, t *forlockv1.Task, m material) *forlockv1.ConnectResponse {
	return &forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskAssignment{TaskAssignment: &forlockv1.TaskAssignment{
		TaskId: t.GetId(), JobId: j.pb.GetId(), Spec: j.pb.GetSpec(), Keys: m.keys, Certificate: m.cert,
	}}}
}

// resend sends a dispatched or running task again after its node
// reconnected: the agent answers from its journal and never runs a task
// twice, and runs it now if it never got it. Callers hold e.mu.
func (e *Engine) resend(j *job, t *forlockv1.Task, sess *registry.Session) {
	if !needsMaterial(j.pb.GetSpec()) {
		sess.Send(e.assignment(j, t, material{}))
		return
	}
	e.withMaterial(j, t, func(m material, err error) {
		if err != nil {
			e.log.Warn("could not make the material to re-send a task", "task_id", t.GetId(), "error", err.Error())
			return
		}
		switch t.GetState() {
		case forlockv1.TaskState_TASK_STATE_DISPATCHED, forlockv1.TaskState_TASK_STATE_RUNNING:
			sess.Send(e.assignment(j, t, m))
		}
	})
}
