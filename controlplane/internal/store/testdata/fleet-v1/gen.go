//go:build ignore

// gen writes fleet.db and kek.json beside it: a control plane's data as the
// schema-1 store (one protobuf Job blob per job) left it. The migration
// tests (store TestMigrateV1Fixture, jobs TestMigratedJobFinishes) open
// copies with the current store. The files are committed; this program is
// kept to show how they were made. It makes a schema-1 file only with
// schema-1 code: at commit 52078f5, where it sat in the jobs package,
//
//	git checkout 52078f5 && cd controlplane/internal/jobs && go run ./testdata/fleet-v1/gen.go testdata/fleet-v1
//
// The fleet: three enrolled nodes (web1, web2, web3); a finished backup of
// web1 (a restore point in the catalog); a finished health check of all
// three; and a backup of all three with max_parallel 1 in flight: web1's
// task succeeded (a second restore point), web2's running with progress,
// web3's queued.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/keys"
	"github.com/forlock/fleet/internal/pki"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: gen DIR")
	}
	if err := run(os.Args[1]); err != nil {
		log.Fatal(err)
	}
}

func run(dir string) error {
	if store.SchemaVersion != 1 {
		return fmt.Errorf("this is schema %d code: run gen at a commit with schema 1", store.SchemaVersion)
	}
	dbPath := filepath.Join(dir, "fleet.db")
	if err := os.Remove(dbPath); err != nil && !os.IsNotExist(err) {
		return err
	}
	st, err := store.Open(dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	kek, err := keys.LoadOrCreateFile(filepath.Join(dir, "kek.json"))
	if err != nil {
		return err
	}
	now := time.Now()
	tok := store.JoinToken{ID: "aaaaaaaaaaaa", Hash: []byte("h"), CreatedAt: now, ExpiresAt: now.Add(time.Hour), MaxUses: 100}
	if err := st.CreateToken(tok); err != nil {
		return err
	}
	names := []string{"web1", "web2", "web3"}
	for _, name := range names {
		_, err := st.Enroll(context.Background(), store.EnrollParams{TokenID: tok.ID, TokenHash: tok.Hash, Name: name, KeyID: "key-" + name, Now: now, NewID: func() string { return "id-" + name }},
			func(store.Node) (store.Issued, error) {
				return store.Issued{Serial: name, NotAfter: now.Add(24 * 365 * time.Hour)}, nil
			})
		if err != nil {
			return err
		}
	}
	lg := slog.New(slog.NewTextHandler(os.Stderr, nil))
	reg, err := registry.New(st, time.Hour, lg)
	if err != nil {
		return err
	}
	e, err := jobs.New(jobs.Config{Store: st, Registry: reg, Logger: lg, Keys: kek})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	nodes, err := st.Nodes()
	if err != nil {
		return err
	}
	sess := map[string]*registry.Session{}
	for _, n := range nodes {
		s, err := reg.Attach(pki.NodeID{ID: n.ID, Epoch: n.Epoch}, n.CertSerial, &forlockv1.AgentHello{Capabilities: []string{string(protocol.CapabilityTasks)}})
		if err != nil {
			return err
		}
		e.NodeConnected(s)
		sess[n.Name] = s
	}
	backup := &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{}}}
	health := &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}}

	// A finished backup of web1.
	j, _, err := e.Submit(ctx, &forlockv1.SubmitJobRequest{Spec: backup, Target: &forlockv1.Target{Nodes: []string{"web1"}}, IdempotencyKey: "nightly-web1"})
	if err != nil {
		return err
	}
	if err := runTask(e, sess["web1"], j.GetTasks()[0].GetId()); err != nil {
		return err
	}
	if err := waitJob(e, j.GetId(), func(j *forlockv1.Job) bool { return j.GetState() == forlockv1.JobState_JOB_STATE_SUCCEEDED }); err != nil {
		return err
	}
	// A finished health check of all three.
	j, _, err = e.Submit(ctx, &forlockv1.SubmitJobRequest{Spec: health, Target: &forlockv1.Target{All: true}})
	if err != nil {
		return err
	}
	for i, t := range j.GetTasks() {
		if err := runTask(e, sess[names[i]], t.GetId()); err != nil {
			return err
		}
	}
	if err := waitJob(e, j.GetId(), func(j *forlockv1.Job) bool { return j.GetState() == forlockv1.JobState_JOB_STATE_SUCCEEDED }); err != nil {
		return err
	}
	// The backup in flight.
	j, _, err = e.Submit(ctx, &forlockv1.SubmitJobRequest{Spec: backup, Target: &forlockv1.Target{All: true}, Rollout: &forlockv1.Rollout{MaxParallel: 1}, IdempotencyKey: "fleet-backup"})
	if err != nil {
		return err
	}
	if err := runTask(e, sess["web1"], j.GetTasks()[0].GetId()); err != nil {
		return err
	}
	web2 := j.GetTasks()[1].GetId()
	if _, err := assignment(sess["web2"], web2); err != nil {
		return err
	}
	e.TaskUpdate(sess["web2"], &forlockv1.TaskUpdate{TaskId: web2, State: forlockv1.TaskState_TASK_STATE_RUNNING})
	e.TaskUpdate(sess["web2"], &forlockv1.TaskUpdate{TaskId: web2, State: forlockv1.TaskState_TASK_STATE_RUNNING,
		Progress: &forlockv1.Progress{Phase: "postgres", BytesDone: 1 << 20, Message: "dumping"}})
	if err := waitJob(e, j.GetId(), func(j *forlockv1.Job) bool {
		return j.GetTasks()[1].GetProgress().GetBytesDone() == 1<<20 && j.GetTasks()[2].GetState() == forlockv1.TaskState_TASK_STATE_QUEUED
	}); err != nil {
		return err
	}
	cancel()
	return <-done
}

// runTask plays the agent for one task: it takes the assignment, reports
// the task running, then succeeded (a backup with its three artifacts).
func runTask(e *jobs.Engine, s *registry.Session, taskID string) error {
	a, err := assignment(s, taskID)
	if err != nil {
		return err
	}
	e.TaskUpdate(s, &forlockv1.TaskUpdate{TaskId: taskID, State: forlockv1.TaskState_TASK_STATE_RUNNING})
	u := &forlockv1.TaskUpdate{TaskId: taskID, State: forlockv1.TaskState_TASK_STATE_SUCCEEDED, Message: "done"}
	for _, k := range a.GetKeys() {
		sum := make([]byte, 32)
		_, _ = rand.Read(sum)
		kind := forlockv1.ArtifactKind(forlockv1.ArtifactKind_value["ARTIFACT_KIND_"+upper(k.GetName())])
		u.Artifacts = append(u.Artifacts, &forlockv1.Artifact{Kind: kind, SizeBytes: 4096, Sha256: hex.EncodeToString(sum),
			KeyId: k.GetKeyId(), WrappedKey: k.GetWrappedKey(), Location: "/var/backups/forlock/" + taskID + "-" + k.GetName()})
	}
	e.TaskUpdate(s, u)
	return nil
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// assignment waits for the task's assignment on the session.
func assignment(s *registry.Session, taskID string) (*forlockv1.TaskAssignment, error) {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.Outbox():
			if a := m.GetTaskAssignment(); a.GetTaskId() == taskID {
				return a, nil
			}
		case <-timeout:
			return nil, fmt.Errorf("no assignment of %s", taskID)
		}
	}
}

func waitJob(e *jobs.Engine, id string, ok func(*forlockv1.Job) bool) error {
	for range 1000 {
		j, err := e.Get(id)
		if err != nil {
			return err
		}
		if ok(j) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("job %s did not get there", id)
}
