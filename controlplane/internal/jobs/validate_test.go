package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestValidUpgradeRollbackCertRotate(t *testing.T) {
	hex64 := "sha256:" + strings.Repeat("ab", 32)
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"tag", validUpgrade(&forlockv1.UpgradeSpec{To: "v2.4.1"}), ""},
		{"digest", validUpgrade(&forlockv1.UpgradeSpec{To: hex64, Services: []string{"api", "nginx"}}), ""},
		{"no target", validUpgrade(&forlockv1.UpgradeSpec{}), "give the new image tag or digest"},
		{"bad tag", validUpgrade(&forlockv1.UpgradeSpec{To: "v2;rm -rf"}), "is neither an image tag"},
		{"short digest", validUpgrade(&forlockv1.UpgradeSpec{To: "sha256:abc"}), "is neither an image tag"},
		{"unknown service", validUpgrade(&forlockv1.UpgradeSpec{To: "v2", Services: []string{"db"}}), `unknown service "db"`},
		{"timeout too long", validUpgrade(&forlockv1.UpgradeSpec{To: "v2", HealthTimeout: durationpb.New(time.Hour)}), "health timeout 1h0m0s"},
		{"traversing destination", validUpgrade(&forlockv1.UpgradeSpec{To: "v2", BackupDestination: &forlockv1.BackupDestination{
			Kind: &forlockv1.BackupDestination_Dir{Dir: "/var/backups/../etc"}}}), "without '..'"},
		{"rollback previous", validRollback(&forlockv1.RollbackSpec{}), ""},
		{"rollback by id", validRollback(&forlockv1.RollbackSpec{ReleaseId: "3a9f0c2b71de"}), ""},
		{"rollback bad id", validRollback(&forlockv1.RollbackSpec{ReleaseId: "../x"}), "is not a release ID"},
		{"pki default", validCertRotate(&forlockv1.CertRotateSpec{}), ""},
		{"pki with kv path", validCertRotate(&forlockv1.CertRotateSpec{KvPath: "x"}), "a KV path goes with the vault_kv source"},
		{"kv", validCertRotate(&forlockv1.CertRotateSpec{Source: forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_KV, KvPath: "tls/{node}"}), ""},
		{"kv traversal", validCertRotate(&forlockv1.CertRotateSpec{Source: forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_KV, KvPath: "../sys"}), "without '..'"},
		{"ttl too short", validCertRotate(&forlockv1.CertRotateSpec{Ttl: durationpb.New(time.Minute)}), "give 1h to 397 days"},
		{"unknown source", validCertRotate(&forlockv1.CertRotateSpec{Source: 9}), "unknown certificate source 9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == "" {
				require.NoError(t, tt.err)
				return
			}
			require.ErrorContains(t, tt.err, tt.want)
			require.ErrorIs(t, tt.err, ErrInvalid, "maps to InvalidArgument")
		})
	}
}

func TestUsableRestorePoint(t *testing.T) {
	avail, deleted := forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, forlockv1.ArtifactState_ARTIFACT_STATE_DELETED
	pg, rd := forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS
	rp := &forlockv1.RestorePoint{Artifacts: []*forlockv1.Artifact{{Kind: pg, State: avail}, {Kind: rd, State: deleted}}}
	require.False(t, usable(rp, nil), "a full restore needs every artifact")
	require.True(t, usable(rp, []forlockv1.ArtifactKind{pg}))
	require.False(t, usable(rp, []forlockv1.ArtifactKind{rd}))
	require.False(t, usable(rp, []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG}), "nothing of that kind")
}

func TestNeedsMaterial(t *testing.T) {
	require.True(t, needsMaterial(&forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{}}}))
	require.True(t, needsMaterial(&forlockv1.JobSpec{Kind: &forlockv1.JobSpec_CertRotate{CertRotate: &forlockv1.CertRotateSpec{}}}))
	require.True(t, needsMaterial(&forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Upgrade{Upgrade: &forlockv1.UpgradeSpec{To: "v2"}}}))
	require.False(t, needsMaterial(&forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Upgrade{Upgrade: &forlockv1.UpgradeSpec{To: "v2", SkipBackup: true}}}))
	require.False(t, needsMaterial(&forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}}))
	require.False(t, needsMaterial(&forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Rollback{Rollback: &forlockv1.RollbackSpec{}}}))
}
