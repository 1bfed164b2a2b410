package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/labels"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// fakeJobs records submits, once per idempotency key, and refuses node
// "empty" as the engine does a node without restore points.
type fakeJobs struct {
	mu   sync.Mutex
	reqs map[string]*forlockv1.SubmitJobRequest
}

func (f *fakeJobs) Submit(_ context.Context, req *forlockv1.SubmitJobRequest) (*forlockv1.Job, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.GetTarget().GetNodes()[0] == "id-empty" {
		return nil, false, errors.New("invalid job: node empty has no restore point")
	}
	if _, ok := f.reqs[req.GetIdempotencyKey()]; ok {
		return &forlockv1.Job{}, false, nil
	}
	f.reqs[req.GetIdempotencyKey()] = req
	return &forlockv1.Job{Id: "j"}, true, nil
}

func (f *fakeJobs) Get(string) (*forlockv1.Job, error) { return nil, errors.New("no") }

type fakeNodes []*forlockv1.Node

func (n fakeNodes) List(sel labels.Selector, states []forlockv1.NodeState) []*forlockv1.Node {
	var out []*forlockv1.Node
	for _, x := range n {
		if sel.Matches(x.GetLabels()) && (len(states) == 0 || x.GetState() == states[0]) {
			out = append(out, x)
		}
	}
	return out
}

func TestSubmitDrills(t *testing.T) {
	online := forlockv1.NodeState_NODE_STATE_ONLINE
	nodes := fakeNodes{
		{Id: "id-web1", Name: "web1", State: online, Labels: map[string]string{"env": "prod"}},
		{Id: "id-web2", Name: "web2", State: online, Labels: map[string]string{"env": "dev"}},
		{Id: "id-down", Name: "down", State: forlockv1.NodeState_NODE_STATE_OFFLINE, Labels: map[string]string{"env": "prod"}},
		{Id: "id-empty", Name: "empty", State: online, Labels: map[string]string{"env": "prod"}},
	}
	jobs := &fakeJobs{reqs: map[string]*forlockv1.SubmitJobRequest{}}
	v := DefaultVerifySchedule
	v.Selector = "env=prod"
	s, err := New(Config{Jobs: jobs, Nodes: nodes, Verify: []VerifySchedule{v}})
	require.NoError(t, err)
	v = s.cfg.Verify[0]
	at := v.when.Next(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	require.Equal(t, time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC), at, "Sunday 04:00 UTC")

	require.Equal(t, 1, s.SubmitDrills(context.Background(), &v, at), "web1 only: web2 not selected, down offline, empty refused")
	require.Zero(t, s.SubmitDrills(context.Background(), &v, at), "once per node and fire time")
	req := jobs.reqs["verify-schedule/weekly/id-web1/2026-12-06T04:00:00Z"]
	require.NotNil(t, req)
	require.True(t, req.GetSpec().GetVerifyBackup().GetLatest())
	require.Equal(t, []string{"id-web1"}, req.GetTarget().GetNodes())
	require.Equal(t, forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP, req.GetRollout().GetOfflinePolicy())

	_, err = New(Config{Jobs: jobs, Verify: []VerifySchedule{DefaultVerifySchedule}})
	require.ErrorContains(t, err, "verify schedules without nodes")
	_, err = New(Config{Jobs: jobs, Nodes: nodes, Verify: []VerifySchedule{DefaultVerifySchedule, DefaultVerifySchedule}})
	require.ErrorContains(t, err, "verify schedule weekly: named twice")
}
