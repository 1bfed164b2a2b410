package agent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/backupstore"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestWalConfigDestination: the WAL goes to a backup directory or to a
// bucket of the agent's S3 server, never both, and the partial segment's
// interval defaults by destination (each ship to S3 is a PUT).
func TestWalConfigDestination(t *testing.T) {
	dirs := BackupConfig{BackupDirs: []string{"/b1", "/b2"}}
	s3 := BackupConfig{BackupDirs: []string{"/b1"}, S3Endpoint: "s3:9000", S3AccessKey: "ak", S3SecretKey: "sk"}

	w, err := WalConfig{Archive: true}.validate(dirs)
	require.NoError(t, err)
	require.Equal(t, WalConfig{Archive: true, Dir: "/b1", ShipInterval: time.Second, PartialInterval: time.Second, Slot: "forlock_archive"}, w)
	st, dest, err := w.store(dirs)
	require.NoError(t, err)
	require.IsType(t, &backupstore.Dir{}, st)
	require.Equal(t, "/b1", dest.GetDir())

	w, err = WalConfig{Archive: true, Bucket: "wal-bucket", Prefix: "/fleet/a/"}.validate(s3)
	require.NoError(t, err)
	require.Equal(t, WalConfig{Archive: true, Bucket: "wal-bucket", Prefix: "fleet/a", ShipInterval: time.Second,
		PartialInterval: DefaultS3PartialInterval, Slot: "forlock_archive"}, w, "no directory; the partial every 10s")
	st, dest, err = w.store(s3)
	require.NoError(t, err)
	require.IsType(t, &backupstore.S3{}, st)
	require.Equal(t, &forlockv1.S3Location{Bucket: "wal-bucket", Prefix: "fleet/a"}, dest.GetS3(), "WalReports name the bucket")
	require.Equal(t, "s3://wal-bucket/fleet/a/wal/n1/00000001/x", st.Location("wal/n1/00000001/x"))

	w, err = WalConfig{Bucket: "wal-bucket", PartialInterval: 2 * time.Second}.validate(s3)
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, w.PartialInterval, "an explicit interval wins")

	for _, tc := range []struct {
		name string
		w    WalConfig
		b    BackupConfig
		msg  string
	}{
		{"dir and bucket", WalConfig{Dir: "/b1", Bucket: "wal-bucket"}, s3, "wal_archive_dir and wal_archive_bucket are both set"},
		{"bucket without S3", WalConfig{Bucket: "wal-bucket"}, dirs, "no S3 server is configured: set s3_endpoint"},
		{"bad bucket", WalConfig{Bucket: "Bad_Bucket"}, s3, `wal archive bucket "Bad_Bucket"`},
		{"bad prefix", WalConfig{Bucket: "wal-bucket", Prefix: "a/../b"}, s3, "wal archive prefix"},
		{"prefix without bucket", WalConfig{Prefix: "fleet"}, dirs, "without wal_archive_bucket"},
		{"partial below ship", WalConfig{ShipInterval: 2 * time.Second, PartialInterval: time.Second}, dirs, "wal partial interval 1s: between the ship interval (2s) and 1h"},
		{"dir outside", WalConfig{Dir: "/etc"}, dirs, "outside the backup directories"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.w.validate(tc.b)
			require.ErrorContains(t, err, tc.msg)
		})
	}

	t.Run("an unreadable secret file is named", func(t *testing.T) {
		b := s3
		b.S3AccessKey, b.S3AccessKeyFile = "", t.TempDir()+"/missing"
		_, _, err := WalConfig{Bucket: "wal-bucket"}.store(b)
		require.ErrorContains(t, err, "read the S3 access key")
	})
}
