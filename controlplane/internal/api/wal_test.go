package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

var walDest = &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: "/var/backups/forlock"}}

func walRange(tl uint32, start, end string, endAt time.Time, keyIDs ...string) *forlockv1.WalRange {
	return &forlockv1.WalRange{Timeline: tl, StartLsn: start, EndLsn: end, StartTime: timestamppb.New(endAt.Add(-time.Minute)),
		EndTime: timestamppb.New(endAt), Destination: walDest, Segments: 3, SizeBytes: 3 << 20, KeyIds: keyIDs}
}

func walReport(ranges ...*forlockv1.WalRange) *forlockv1.ConnectRequest {
	return &forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_WalReport{WalReport: &forlockv1.WalReport{Ranges: ranges, Streaming: true}}}
}

// archiveKey receives messages until an archive key comes.
func archiveKey(t *testing.T, st controlStream) *forlockv1.ArchiveKey {
	t.Helper()
	for {
		m := next(t, st)
		if k := m.GetArchiveKey(); k != nil {
			return k
		}
	}
}

// TestArchiveKeyAfterHelloAndRotated: the agent gets its archive key right
// after the ServerHello and a new one when it rotates; the control plane
// keeps both, wrapped: the plain keys are not in the database file, the
// wrapped ones are, and they unwrap to what the agent got.
func TestArchiveKeyAfterHelloAndRotated(t *testing.T) {
	s := newTestServer(t, serverOptions{walRotation: time.Second})
	a := s.agent("wal-1")
	st, _ := a.open(t)
	first := archiveKey(t, st)
	require.True(t, strings.HasPrefix(first.GetKeyId(), "archive:"+a.id+":"), first.GetKeyId())
	require.Len(t, first.GetPlainKey(), 32)
	require.Equal(t, time.Second, first.GetRotateAfter().AsTime().Sub(first.GetCreatedAt().AsTime()))

	start := time.Now()
	second := archiveKey(t, st)
	require.Less(t, time.Since(start), 5*time.Second)
	require.NotEqual(t, first.GetKeyId(), second.GetKeyId())
	require.NotEqual(t, first.GetPlainKey(), second.GetPlainKey())

	stored, err := s.st.ArchiveKeys(a.id)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(stored), 1)
	cur := stored[len(stored)-1]
	require.Equal(t, second.GetKeyId(), cur.KeyID)
	plain, err := s.kek.Unwrap(t.Context(), cur.KEKID, cur.Wrapped)
	require.NoError(t, err)
	require.Equal(t, second.GetPlainKey(), plain)

	require.NoError(t, st.CloseSend())
	raw, err := os.ReadFile(dbPath(t, s))
	require.NoError(t, err)
	b64 := func(b []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(b)) }
	require.True(t, bytes.Contains(raw, b64(cur.Wrapped)), "the wrapped key is stored (base64 in JSON)")
	for _, k := range [][]byte{first.GetPlainKey(), second.GetPlainKey()} {
		require.False(t, bytes.Contains(raw, k), "the plain key is not stored")
		require.False(t, bytes.Contains(raw, b64(k)), "the plain key is not stored")
	}
}

// dbPath finds the test server's database file.
func dbPath(t *testing.T, s *testServer) string {
	t.Helper()
	p := s.st.Path()
	require.NotEmpty(t, p)
	return p
}

// TestHostileWalReport: a report naming another node's archive key, a
// million ranges, a bad LSN or a backwards range closes the stream with
// InvalidArgument, and nothing of it is kept: no catalog entry, no state.
func TestHostileWalReport(t *testing.T) {
	s := newTestServer(t, serverOptions{walRotation: time.Hour})
	a, b := s.agent("wal-a"), s.agent("wal-b")
	sb, _ := b.open(t)
	bKey := archiveKey(t, sb)
	now := time.Now()

	million := make([]*forlockv1.WalRange, 1_000_000)
	for i := range million {
		million[i] = &forlockv1.WalRange{}
	}
	for _, tc := range []struct {
		name   string
		report func(own string) *forlockv1.ConnectRequest
		msg    string
	}{
		{"another node's key", func(string) *forlockv1.ConnectRequest {
			return walReport(walRange(1, "0/1000000", "0/2000000", now, bKey.GetKeyId()))
		}, "not one of this node's"},
		{"a million ranges", func(string) *forlockv1.ConnectRequest { return walReport(million...) }, "1000000 ranges, at most 256"},
		{"bad LSN", func(own string) *forlockv1.ConnectRequest {
			return walReport(walRange(1, "0/1000000", "0/zz", now, own))
		}, "not a WAL position"},
		{"backwards", func(own string) *forlockv1.ConnectRequest {
			return walReport(walRange(1, "0/3000000", "0/2000000", now, own))
		}, "starts after it ends"},
		{"no timeline", func(own string) *forlockv1.ConnectRequest {
			return walReport(walRange(0, "0/1000000", "0/2000000", now, own))
		}, "no timeline"},
		{"path trick", func(own string) *forlockv1.ConnectRequest {
			r := walRange(1, "0/1000000", "0/2000000", now, own)
			r.Destination = &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: "/var/backups/../../etc"}}
			return walReport(r)
		}, "absolute, clean directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := a.open(t)
			own := archiveKey(t, st)
			require.NoError(t, st.Send(tc.report(own.GetKeyId())))
			_, err := recvErr(st)
			requireStatus(t, err, codes.InvalidArgument, tc.msg, "BAD_WAL_REPORT")
			require.NoError(t, s.archive.Flush())
			got, err := s.st.WalRanges(a.id)
			require.NoError(t, err)
			require.Empty(t, got)
			require.Nil(t, walCheck(t, s, a.id), "no state kept of a refused report")
		})
	}

	// The positive twin: a good report from b is cataloged under b, whatever
	// node ID it claims, and shows as b's wal_archive check.
	r := walRange(1, "0/1000000", "0/2000000", now, bKey.GetKeyId())
	r.NodeId = a.id
	require.NoError(t, sb.Send(walReport(r)))
	require.Eventually(t, func() bool {
		require.NoError(t, s.archive.Flush())
		got, err := s.st.WalRanges(b.id)
		require.NoError(t, err)
		return len(got) == 1 && got[0].GetNodeId() == b.id
	}, 5*time.Second, 20*time.Millisecond)
	got, err := s.st.WalRanges(a.id)
	require.NoError(t, err)
	require.Empty(t, got)
	require.Equal(t, forlockv1.CheckStatus_CHECK_STATUS_OK, walCheck(t, s, b.id).GetStatus())
}

func walCheck(t *testing.T, s *testServer, node string) *forlockv1.CheckResult {
	t.Helper()
	for _, c := range s.node(node).GetHealth().GetChecks() {
		if c.GetName() == "wal_archive" {
			return c
		}
	}
	return nil
}

// TestWalGapIsCriticalAndHeals: a report with a gap makes the node's
// wal_archive check CRITICAL and submits one physical base backup; a
// second gap report while it is queued submits none.
func TestWalGapIsCriticalAndHeals(t *testing.T) {
	s := newTestServer(t, serverOptions{walRotation: time.Hour})
	a := s.agent("wal-gap")
	st, _ := a.open(t)
	key := archiveKey(t, st)
	gap := walReport(walRange(1, "0/1000000", "0/5000000", time.Now(), key.GetKeyId()))
	gap.GetWalReport().Gap, gap.GetWalReport().GapAfterLsn = true, "0/5000000"
	require.NoError(t, st.Send(gap))
	require.Eventually(t, func() bool {
		c := walCheck(t, s, a.id)
		return c != nil && c.GetStatus() == forlockv1.CheckStatus_CHECK_STATUS_CRITICAL
	}, 5*time.Second, 20*time.Millisecond)
	require.Contains(t, walCheck(t, s, a.id).GetMessage(), "WAL gap after 0/5000000")
	require.NoError(t, st.Send(gap))
	backups := func() []*forlockv1.Job {
		resp, err := s.Jobs.ListJobs(s.ctx(), &forlockv1.ListJobsRequest{})
		require.NoError(t, err)
		var out []*forlockv1.Job
		for _, j := range resp.GetJobs() {
			if j.GetSpec().GetBackup() != nil {
				out = append(out, j)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(backups()) == 1 }, 5*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // the second report is handled
	jobs := backups()
	require.Len(t, jobs, 1)
	require.Equal(t, forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL, jobs[0].GetSpec().GetBackup().GetPostgresFormat())
	require.True(t, strings.HasPrefix(jobs[0].GetIdempotencyKey(), "wal-heal/"+a.id+"/"))
}

// pitrCatalog gives node two physical base backups and WAL with a gap:
//
//	base1 ends t0+1m, WAL from 0/2000028     base2 ends t0+30m, WAL from 0/9000028
//	R1 0/2000000-0/5000000 (to t0+10m)  gap  R2 0/7000000-0/C000000 (to t0+40m)
func pitrCatalog(t *testing.T, s *testServer, node string, t0 time.Time, keyID string) (base1, base2 string) {
	t.Helper()
	mk := func(id, start string, end time.Time) *forlockv1.RestorePoint {
		plain := make([]byte, 32)
		wrapped, err := s.kek.Wrap(t.Context(), plain)
		require.NoError(t, err)
		return &forlockv1.RestorePoint{Id: id, NodeId: node, NodeName: "n", CreatedAt: timestamppb.New(end), Artifacts: []*forlockv1.Artifact{{
			Id: id + "-postgres", Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, PostgresFormat: forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL,
			State: forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, NodeId: node, RestorePointId: id, KeyId: s.kek.KeyID(), WrappedKey: wrapped,
			Location: "/var/backups/forlock/" + id, Sha256: strings.Repeat("a", 64), SizeBytes: 10,
			WalStartLsn: start, WalEndLsn: start, Timeline: 1, BackupEndTime: timestamppb.New(end),
		}}}
	}
	rp1, rp2 := mk("20261203T000001Z-"+node[:4]+"a", "0/2000028", t0.Add(time.Minute)), mk("20261203T000002Z-"+node[:4]+"b", "0/9000028", t0.Add(30*time.Minute))
	require.NoError(t, s.st.SaveJobs(store.JobWrite{RestorePoints: []*forlockv1.RestorePoint{rp1, rp2}}))
	r1 := walRange(1, "0/2000000", "0/5000000", t0.Add(10*time.Minute), keyID)
	r2 := walRange(1, "0/7000000", "0/C000000", t0.Add(40*time.Minute), keyID)
	r1.NodeId, r2.NodeId = node, node
	_, err := s.st.MergeWalRanges(map[string][]*forlockv1.WalRange{node: {r1, r2}})
	require.NoError(t, err)
	return rp1.GetArtifacts()[0].GetId(), rp2.GetArtifacts()[0].GetId()
}

// TestPointInTimeRestoreResolution: SubmitJob picks the newest base backup
// that ended before the target and the WAL ranges that reach it, refuses a
// target behind a gap naming it, one before every base, one in the future,
// and a node without a base backup, each before any job exists; the task
// carries the archive key its WAL needs.
func TestPointInTimeRestoreResolution(t *testing.T) {
	s := newTestServer(t, serverOptions{walRotation: time.Hour})
	a := s.agent("pitr-1")
	st, _ := a.open(t, protocol.CapabilityTasks)
	key := archiveKey(t, st)
	t0 := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	base1, base2 := pitrCatalog(t, s, a.id, t0, key.GetKeyId())

	submit := func(r *forlockv1.RestoreSpec) (*forlockv1.SubmitJobResponse, error) {
		return s.Jobs.SubmitJob(s.ctx(), &forlockv1.SubmitJobRequest{
			Spec: &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Restore{Restore: r}}, Target: &forlockv1.Target{Nodes: []string{a.id}}})
	}
	at := func(d time.Duration) *forlockv1.RestoreSpec {
		return &forlockv1.RestoreSpec{ToTime: timestamppb.New(t0.Add(d))}
	}

	for _, tc := range []struct {
		name   string
		spec   *forlockv1.RestoreSpec
		code   codes.Code
		msg    string
		reason string
	}{
		{"behind the gap", at(20 * time.Minute), codes.FailedPrecondition,
			"WAL missing between 0/5000000 and 0/7000000 (after " + t0.Add(10*time.Minute).Format(time.RFC3339) + "): restore to a time before it or after the next base backup", "WAL_MISSING"},
		{"after the newest WAL", at(50 * time.Minute), codes.FailedPrecondition, "WAL missing after 0/C000000", "WAL_MISSING"},
		{"before every base", at(-time.Hour), codes.InvalidArgument, "is before every base backup of node pitr-1: the earliest reachable time is " + t0.Add(time.Minute).Format(time.RFC3339), "INVALID_JOB"},
		{"in the future", &forlockv1.RestoreSpec{ToTime: timestamppb.New(time.Now().Add(time.Hour))}, codes.InvalidArgument, "is in the future", "INVALID_JOB"},
		{"both", &forlockv1.RestoreSpec{ToTime: timestamppb.New(t0), ToLatest: true}, codes.InvalidArgument, "not both", "INVALID_JOB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := submit(tc.spec)
			requireStatus(t, err, tc.code, tc.msg, tc.reason)
		})
	}
	other := s.enroll("pitr-nobase", nil)
	_, err := s.Jobs.SubmitJob(s.ctx(), &forlockv1.SubmitJobRequest{
		Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Restore{Restore: &forlockv1.RestoreSpec{ToLatest: true}}},
		Target: &forlockv1.Target{Nodes: []string{other}}})
	requireStatus(t, err, codes.FailedPrecondition, "has no physical base backup", "WAL_MISSING")
	list, err := s.Jobs.ListJobs(s.ctx(), &forlockv1.ListJobsRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetJobs(), "a refused restore leaves no job")

	for _, tc := range []struct {
		name   string
		spec   *forlockv1.RestoreSpec
		base   string
		ranges []string
	}{
		{"before the gap", at(5 * time.Minute), base1, []string{"0/2000000"}},
		{"after the second base", at(35 * time.Minute), base2, []string{"0/7000000"}},
		{"latest", &forlockv1.RestoreSpec{ToLatest: true}, base2, []string{"0/7000000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := submit(tc.spec)
			require.NoError(t, err)
			r := resp.GetJob().GetSpec().GetRestore()
			require.Len(t, r.GetArtifacts(), 1)
			require.Equal(t, tc.base, r.GetArtifacts()[0].GetId())
			var starts []string
			for _, w := range r.GetWal() {
				starts = append(starts, w.GetStartLsn())
			}
			require.Equal(t, tc.ranges, starts)
		})
	}

	// The first restore's assignment carries the base's data key and the
	// archive key, in plain, for the agent.
	var asg *forlockv1.TaskAssignment
	for asg == nil {
		asg = next(t, st).GetTaskAssignment()
	}
	var names []string
	for _, k := range asg.GetKeys() {
		names = append(names, k.GetName())
		if k.GetName() == "archive" {
			require.Equal(t, key.GetKeyId(), k.GetKeyId())
			require.Equal(t, key.GetPlainKey(), k.GetPlainKey())
		}
	}
	require.Equal(t, []string{base1, "archive"}, names)
}

// TestListRecoveryWindows: each node in the caller's scope with WAL gets
// its window: from the end of the oldest base backup with contiguous WAL
// to the newest WAL, with the gap; a scoped identity sees only its nodes.
func TestListRecoveryWindows(t *testing.T) {
	s := newTestServer(t, serverOptions{walRotation: time.Hour})
	prod := s.enroll("rw-prod", map[string]string{"env": "prod"})
	stg := s.enroll("rw-stg", map[string]string{"env": "staging"})
	t0 := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	for _, n := range []string{prod, stg} {
		k, err := s.archiveKeys.Current(t.Context(), n)
		require.NoError(t, err)
		pitrCatalog(t, s, n, t0, k.GetKeyId())
	}
	resp, err := s.Backups.ListRecoveryWindows(s.ctx(), &forlockv1.ListRecoveryWindowsRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetWindows(), 2)
	w := resp.GetWindows()[0]
	require.Equal(t, "rw-prod", w.GetNodeName())
	require.Equal(t, t0.Add(30*time.Minute), w.GetEarliest().AsTime(), "base1's WAL has a gap before latest")
	require.Equal(t, t0.Add(40*time.Minute), w.GetLatest().AsTime())
	require.Len(t, w.GetGaps(), 1)
	require.Equal(t, "0/5000000", w.GetGaps()[0].GetAfterLsn())
	require.Equal(t, "0/7000000", w.GetGaps()[0].GetBeforeLsn())
	require.Equal(t, uint64(6<<20), w.GetWalBytes())

	acc := forlockv1.NewAccessServiceClient(s.conn)
	id, err := acc.CreateIdentity(s.ctx(), &forlockv1.CreateIdentityRequest{Name: "stg-viewer", Role: "viewer", Scope: "env=staging"})
	require.NoError(t, err)
	ctx := s.as(id.GetSecret())
	resp, err = s.Backups.ListRecoveryWindows(ctx, &forlockv1.ListRecoveryWindowsRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetWindows(), 1)
	require.Equal(t, stg, resp.GetWindows()[0].GetNodeId())
	_, err = s.Backups.ListRecoveryWindows(ctx, &forlockv1.ListRecoveryWindowsRequest{Node: "rw-prod"})
	requireStatus(t, err, codes.NotFound, "rw-prod", "NODE_NOT_FOUND")
}

// TestRestoreReadsOnlyBackupsInScope: an operator scoped to staging may
// restore a staging node, but not from a production node's backups or WAL
// (source_node, or the artifact IDs of its restore point): those are "not
// found", no job is made and no archive key leaves for it. Unscoped, the
// same restore is accepted.
func TestRestoreReadsOnlyBackupsInScope(t *testing.T) {
	s := newTestServer(t, serverOptions{walRotation: time.Hour})
	prod := s.enroll("sc-prod", map[string]string{"env": "prod"})
	s.enroll("sc-stg", map[string]string{"env": "staging"})
	k, err := s.archiveKeys.Current(t.Context(), prod)
	require.NoError(t, err)
	t0 := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	_, base2 := pitrCatalog(t, s, prod, t0, k.GetKeyId())

	acc := forlockv1.NewAccessServiceClient(s.conn)
	id, err := acc.CreateIdentity(s.ctx(), &forlockv1.CreateIdentityRequest{Name: "stg-admin", Role: "admin", Scope: "env=staging"})
	require.NoError(t, err)
	scoped := s.as(id.GetSecret())
	restore := func(ctx context.Context, r *forlockv1.RestoreSpec) error {
		_, err := s.Jobs.SubmitJob(ctx, &forlockv1.SubmitJobRequest{
			Spec: &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Restore{Restore: r}}, Target: &forlockv1.Target{Nodes: []string{"sc-stg"}}})
		return err
	}
	for _, r := range []*forlockv1.RestoreSpec{
		{ToLatest: true, SourceNode: "sc-prod"},
		{Latest: true, SourceNode: "sc-prod"},
		{ArtifactIds: []string{base2}},
	} {
		err := restore(scoped, r)
		requireStatus(t, err, codes.InvalidArgument, "not found", "INVALID_JOB")
	}
	jobs, err := s.Jobs.ListJobs(s.ctx(), &forlockv1.ListJobsRequest{})
	require.NoError(t, err)
	require.Empty(t, jobs.GetJobs(), "nothing submitted")

	require.NoError(t, restore(s.ctx(), &forlockv1.RestoreSpec{ToLatest: true, SourceNode: "sc-prod"}), "unscoped, the same restore is accepted")
}
