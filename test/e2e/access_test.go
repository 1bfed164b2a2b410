package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// ctlAs runs forlockctl with another credential than the admin token.
func (c *cluster) ctlAs(token string, args ...string) (string, error) {
	return c.ctlErr(append([]string{"--token", token}, args...)...)
}

// connAs is a gRPC connection presenting token.
func (c *cluster) connAs(token string) *grpc.ClientConn {
	c.t.Helper()
	_, tlsCfg := c.adminTLS()
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)), grpc.WithPerRPCCredentials(bearer(token)))
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// identity creates an identity and returns its secret.
func (c *cluster) identity(name, role string, extra ...string) string {
	c.t.Helper()
	secret := strings.TrimSpace(c.ctl(append([]string{"access", "create", name, "--role", role, "-q"}, extra...)...))
	require.True(c.t, strings.HasPrefix(secret, "fac_"), "access create -q printed %q", secret)
	return secret
}

type jsonAudit struct {
	Seq     string `json:"seq"`
	Actor   string `json:"actor"`
	Role    string `json:"role"`
	Method  string `json:"method"`
	Target  string `json:"target"`
	Summary string `json:"summary"`
	Result  string `json:"result"`
	Reason  string `json:"reason"`
	Count   string `json:"count"`
}

func (c *cluster) auditRecords(args ...string) []jsonAudit {
	c.t.Helper()
	var resp struct {
		Records []jsonAudit `json:"records"`
	}
	out := c.ctl(append([]string{"audit", "list", "-o", "json"}, args...)...)
	require.NoError(c.t, json.Unmarshal([]byte(out), &resp), out)
	return resp.Records
}

func jobNodes(t *testing.T, c *cluster, id string) []string {
	t.Helper()
	var names []string
	for _, task := range c.job(id).Tasks {
		names = append(names, task.NodeName)
	}
	return names
}

// TestRolesAndScopes: a viewer reads and cannot act; an operator scoped to
// env=staging sees, backs up, checks and reads logs of staging nodes only,
// whatever it names; an operator cannot restore and an admin can; revoked
// and expired credentials are refused at their next call. Every denial is
// in the audit log.
func TestRolesAndScopes(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	c := startCluster(t)
	c.startTestAgent("stg1", filepath.Join(t.TempDir(), "s"), 50*time.Millisecond, "--join-token-file", c.tokenFile("--label", "env=staging"))
	c.startTestAgent("prd1", filepath.Join(t.TempDir(), "p"), 50*time.Millisecond, "--join-token-file", c.tokenFile("--label", "env=prod"))
	c.waitOnline("stg1")
	c.waitOnline("prd1")

	viewer := c.identity("dash", "viewer")
	junior := c.identity("junior", "operator", "--scope", "env=staging", "--ttl", "720h")
	ops := c.identity("ops", "operator")
	boss := c.identity("boss", "admin")

	// A viewer reads, and is refused anything else.
	out, err := c.ctlAs(viewer, "nodes", "list")
	require.NoError(t, err)
	require.Contains(t, out, "stg1")
	require.Contains(t, out, "prd1")
	_, err = c.ctlAs(viewer, "health-check", "--node", "stg1", "--detach")
	require.ErrorContains(t, err, "permission denied: permission denied: dash (role viewer) lacks jobs.submit")
	_, err = c.ctlAs(viewer, "tokens", "create")
	require.ErrorContains(t, err, "lacks tokens.manage")

	// The scoped operator sees staging only.
	out, err = c.ctlAs(junior, "nodes", "list")
	require.NoError(t, err)
	require.Contains(t, out, "stg1")
	require.NotContains(t, out, "prd1")
	out, err = c.ctlAs(junior, "--reason", "CHG-42 nightly check", "health-check", "--all", "--detach")
	require.NoError(t, err)
	all := strings.TrimSpace(out)
	require.Equal(t, []string{"stg1"}, jobNodes(t, c, all), "--all means all nodes in scope")
	out, err = c.ctlAs(junior, "health-check", "-l", "env", "--detach")
	require.NoError(t, err)
	require.Equal(t, []string{"stg1"}, jobNodes(t, c, strings.TrimSpace(out)), "a selector is cut to the scope")
	for _, args := range [][]string{
		{"health-check", "--node", "prd1", "--detach"},
		{"backup", "--node", "prd1", "--detach"},
		{"logs", "--node", "prd1", "--tail", "5"},
		{"restore", "--list", "--node", "prd1"},
		{"jobs", "list", "--node", "prd1"},
	} {
		_, err := c.ctlAs(junior, args...)
		require.ErrorContains(t, err, `node "prd1" not found`, "%v: outside the scope is the same as absent", args)
	}
	// A job on a prod node is invisible to it.
	prodJob := c.submitDetached("--node", "prd1")
	_, err = c.ctlAs(junior, "jobs", "get", prodJob)
	require.ErrorContains(t, err, "not found")
	out, err = c.ctlAs(junior, "jobs", "list", "-o", "json")
	require.NoError(t, err)
	require.NotContains(t, out, prodJob)
	require.Contains(t, out, all)
	_, err = c.ctlAs(junior, "access", "list")
	require.ErrorContains(t, err, "lacks access.manage")

	// Restores need an admin: an operator is refused before anything is
	// looked up; an admin's request is authorized and goes on to the
	// engine (which finds no such restore point here).
	restore := &forlockv1.SubmitJobRequest{
		Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Restore{Restore: &forlockv1.RestoreSpec{RestorePointId: "nosuch"}}},
		Target: &forlockv1.Target{Nodes: []string{"stg1"}},
	}
	_, err = forlockv1.NewJobServiceClient(c.connAs(ops)).SubmitJob(t.Context(), restore)
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "ops (role operator) lacks restore.run")
	_, err = forlockv1.NewJobServiceClient(c.connAs(boss)).SubmitJob(t.Context(), restore)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "the admin passed authorization: %v", err)
	require.NotContains(t, err.Error(), "lacks")

	// Revocation takes effect at the next call.
	_, err = c.ctlAs(junior, "nodes", "list")
	require.NoError(t, err)
	c.ctl("access", "revoke", "junior")
	_, err = c.ctlAs(junior, "nodes", "list")
	require.ErrorContains(t, err, "the token was refused")

	// A credential past its TTL is refused.
	temp := c.identity("temp", "viewer", "--ttl", "2s")
	_, err = c.ctlAs(temp, "nodes", "list")
	require.NoError(t, err)
	time.Sleep(2100 * time.Millisecond)
	_, err = c.ctlAs(temp, "nodes", "list")
	require.ErrorContains(t, err, "identity temp expired at")

	// whoami, and the list of identities.
	out, err = c.ctlAs(ops, "access", "whoami")
	require.NoError(t, err)
	require.Regexp(t, `Identity:\s+ops\nRole:\s+operator\nScope:\s+\(whole fleet\)`, out)
	list := c.ctl("access", "list")
	require.Regexp(t, `(?m)^admin\s+admin\s+\(whole fleet\)\s+bootstrap`, list)
	require.Regexp(t, `(?m)^junior\s+operator\s+env=staging\s+revoked`, list)
	require.Regexp(t, `(?m)^temp\s+viewer\s+\(whole fleet\)\s+expired`, list)

	// The audit log has the denials, the change with its reason, and the
	// job records who and why.
	denied := c.auditRecords("--actor", "dash", "--failures")
	require.NotEmpty(t, denied)
	require.Equal(t, "/forlock.v1.JobService/SubmitJob", denied[0].Method)
	require.Equal(t, "PermissionDenied", denied[0].Result)
	var withReason []jsonAudit
	for _, r := range c.auditRecords("--actor", "junior") {
		if r.Reason != "" {
			withReason = append(withReason, r)
		}
	}
	require.Len(t, withReason, 1)
	require.Equal(t, "CHG-42 nightly check", withReason[0].Reason)
	require.Equal(t, "operator", withReason[0].Role)
	j := c.ctl("jobs", "get", all, "-o", "json")
	require.Contains(t, j, `"createdBy": "junior"`)
	require.Contains(t, j, `"reason": "CHG-42 nightly check"`)
	require.Contains(t, j, `"scope": "env=staging"`)
	revokes := c.auditRecords("--method", "RevokeIdentity")
	require.Len(t, revokes, 1)
	require.Equal(t, "identity/junior", revokes[0].Target)
	require.Equal(t, "admin", revokes[0].Actor)
	require.Contains(t, c.ctl("audit", "verify"), "Audit log intact")
}

// TestAuditChain: a thousand mixed calls verify; one byte changed in the
// database (offline) is named; a deleted record is found; a kill -9 in a
// burst loses no record of a call that returned OK; an export holds no
// secret.
func TestAuditChain(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	c := startCluster(t)
	admin, _ := c.adminTLS()
	adminConn := c.connAs(admin)
	nodes := forlockv1.NewNodeServiceClient(adminConn)
	acc := forlockv1.NewAccessServiceClient(adminConn)
	viewerSecret := c.identity("dash", "viewer")
	viewerJobs := forlockv1.NewJobServiceClient(c.connAs(viewerSecret))
	badJobs := forlockv1.NewJobServiceClient(c.connAs(randomSecret(t, "fat_")))

	var secrets []string // every secret the burst saw: none may reach the log
	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-forlock-reason", "CHG-7")
	for i := range 1000 {
		switch i % 5 {
		case 0, 1:
			resp, err := nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{Labels: map[string]string{"n": fmt.Sprint(i)}})
			require.NoError(t, err)
			secrets = append(secrets, resp.GetSecret())
		case 2:
			_, err := viewerJobs.SubmitJob(ctx, &forlockv1.SubmitJobRequest{Spec: &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}}, Target: &forlockv1.Target{All: true}})
			require.Equal(t, codes.PermissionDenied, status.Code(err))
		case 3:
			resp, err := acc.CreateIdentity(ctx, &forlockv1.CreateIdentityRequest{Name: fmt.Sprintf("bot-%d", i), Role: "viewer", Ttl: durationpb.New(time.Hour)})
			require.NoError(t, err)
			secrets = append(secrets, resp.GetSecret())
		case 4:
			if i%200 == 4 { // a few wrong credentials: aggregated, not one write each
				_, err := badJobs.ListJobs(ctx, &forlockv1.ListJobsRequest{})
				require.Equal(t, codes.Unauthenticated, status.Code(err))
			} else {
				resp, err := acc.RotateIdentity(ctx, &forlockv1.RotateIdentityRequest{Name: fmt.Sprintf("bot-%d", i-1)})
				require.NoError(t, err)
				secrets = append(secrets, resp.GetSecret())
			}
		}
	}
	out := c.ctl("audit", "verify")
	require.Regexp(t, `Audit log intact: \d{3,} records`, out)

	// kill -9 in the middle of a burst: every call that returned OK has its
	// record.
	var mu sync.Mutex
	var okIDs []string
	burst, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for burst.Err() == nil {
				resp, err := nodes.CreateJoinToken(burst, &forlockv1.CreateJoinTokenRequest{})
				if err != nil {
					return
				}
				mu.Lock()
				okIDs = append(okIDs, resp.GetToken().GetId())
				secrets = append(secrets, resp.GetSecret())
				mu.Unlock()
			}
		})
	}
	time.Sleep(700 * time.Millisecond)
	c.cp.kill(syscall.SIGKILL)
	stop()
	wg.Wait()
	require.NotEmpty(t, okIDs)
	c.startControlPlane()
	targets := map[string]bool{}
	for _, r := range c.auditRecords("--method", "CreateJoinToken", "--limit", "100000") {
		targets[r.Target] = true
	}
	for _, id := range okIDs {
		require.True(t, targets["join-token/"+id], "token %s was created (OK returned) but has no audit record", id)
	}
	t.Logf("kill -9 during a burst: %d acknowledged creations, each with its record", len(okIDs))
	require.Contains(t, c.ctl("audit", "verify"), "Audit log intact")

	// The export holds no secret, and does hold what it should.
	export := c.ctl("audit", "export")
	require.Contains(t, export, `"reason":"CHG-7"`)
	require.Contains(t, export, "join-token/"+okIDs[0])
	require.Contains(t, export, "identity/bot-3")
	for _, s := range append(secrets, admin, viewerSecret) {
		require.NotContains(t, export, s)
	}
	for _, marker := range []string{"fjt_", "fac_", "fat_", "PRIVATE KEY", "BEGIN CERTIFICATE"} {
		require.NotContains(t, export, marker)
	}
	// Wrong credentials: one aggregated record per client, method and
	// minute, written at the latest when the control plane stops (a kill -9
	// loses the current minute's count: the request log has every call).
	for range 10 {
		_, err := badJobs.GetJob(t.Context(), &forlockv1.GetJobRequest{Id: "x"})
		require.Equal(t, codes.Unauthenticated, status.Code(err))
	}
	c.cp.kill(syscall.SIGTERM)
	c.startControlPlane()
	var failed uint64
	for _, r := range c.auditRecords("--failures", "--method", "GetJob", "--limit", "100000") {
		var n uint64
		_, _ = fmt.Sscan(r.Count, &n)
		require.Equal(t, "Unauthenticated", r.Result)
		failed += n
	}
	require.Equal(t, uint64(10), failed, "10 failures in at most two records (a minute may turn)")

	// Offline: change one byte of one record, then delete another.
	c.cp.kill(syscall.SIGTERM)
	db := filepath.Join(c.dataDir, "fleet.db")
	editAudit(t, db, func(b *bolt.Bucket) {
		k := binary.BigEndian.AppendUint64(nil, 500)
		v := append([]byte(nil), b.Get(k)...)
		require.NotEmpty(t, v)
		i := strings.Index(string(v), `"method"`)
		v[i+12] ^= 0x20 // a letter of the method's name changes case
		require.NoError(t, b.Put(k, v))
	})
	c.startControlPlane()
	out, err := c.ctlErr("audit", "verify")
	require.Error(t, err, out)
	require.ErrorContains(t, err, "AUDIT LOG TAMPERED: record 500: record 500 was changed after it was written")

	c.cp.kill(syscall.SIGTERM)
	editAudit(t, db, func(b *bolt.Bucket) {
		k := binary.BigEndian.AppendUint64(nil, 500)
		v := append([]byte(nil), b.Get(k)...)
		i := strings.Index(string(v), `"method"`)
		v[i+12] ^= 0x20 // put it back
		require.NoError(t, b.Put(k, v))
		require.NoError(t, b.Delete(binary.BigEndian.AppendUint64(nil, 300)))
	})
	c.startControlPlane()
	_, err = c.ctlErr("audit", "verify")
	require.ErrorContains(t, err, "AUDIT LOG TAMPERED: record 300: record 300 is missing")
}

func editAudit(t *testing.T, path string, fn func(*bolt.Bucket)) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		fn(tx.Bucket([]byte("audit")))
		return nil
	}))
	require.NoError(t, db.Close())
}
