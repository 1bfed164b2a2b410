package commands

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestBackupRestoreCommandLineErrors(t *testing.T) {
	conn := map[string]string{"HOME": t.TempDir(), envAddr: closedAddr(t), envToken: "tok"}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"backup no target", []string{"backup"}, "no target: choose the nodes"},
		{"backup args", []string{"backup", "--all", "web-1"}, "takes no arguments"},
		{"dest relative", []string{"backup", "--all", "--dest", "backups"}, `--dest "backups": give an absolute directory`},
		{"dest traversal", []string{"backup", "--all", "--dest", "/var/backups/../etc"}, `--dest "/var/backups/../etc": '..' is not allowed`},
		{"dest dots in name", []string{"backup", "--all", "--dest", "/var/a..b"}, `'..' is not allowed in the path`},
		{"dest unclean", []string{"backup", "--all", "--dest", "/var/backups/"}, "give a clean path"},
		{"dest double slash", []string{"backup", "--all", "--dest", "/var//backups"}, "give a clean path"},
		{"dest empty", []string{"backup", "--all", "--dest", ""}, "--dest: empty path"},
		{"dest and s3", []string{"backup", "--all", "--dest", "/b", "--s3", "bucket"}, "--dest and --s3 cannot be combined"},
		{"prefix without s3", []string{"backup", "--all", "--s3-prefix", "fleet/"}, "--s3-prefix needs --s3 BUCKET"},
		{"bucket upper case", []string{"backup", "--all", "--s3", "Backups"}, `--s3 "Backups": a bucket name is 3-63 lower-case`},
		{"bucket short", []string{"backup", "--all", "--s3", "ab"}, "a bucket name is 3-63"},
		{"bucket dots", []string{"backup", "--all", "--s3", "a..b"}, "a bucket name is 3-63"},
		{"bucket ends with dash", []string{"backup", "--all", "--s3", "abc-"}, "a bucket name is 3-63"},
		{"prefix absolute", []string{"backup", "--all", "--s3", "backups", "--s3-prefix", "/fleet"}, "give a relative key prefix"},
		{"prefix traversal", []string{"backup", "--all", "--s3", "backups", "--s3-prefix", "fleet/../x"}, `--s3-prefix "fleet/../x": '..' is not allowed`},
		{"only unknown", []string{"backup", "--all", "--only", "postgres,mysql"}, `--only "mysql": unknown kind: use one or more of postgres, redis, config`},
		{"only empty", []string{"backup", "--all", "--only", ""}, "--only: empty"},
		{"restore no node", []string{"restore", "--latest"}, "give --node NODE"},
		{"restore two nodes", []string{"restore", "--latest", "--node", "a,b"}, "--node: give exactly one node (got 2)"},
		{"restore selector", []string{"restore", "--latest", "-l", "env=prod"}, "unknown shorthand flag: 'l'"},
		{"restore all", []string{"restore", "--latest", "--all"}, "unknown flag: --all"},
		{"restore nothing", []string{"restore", "--node", "a"}, "what to restore? give --latest, a RESTORE_POINT ID or ARTIFACT_IDs"},
		{"restore latest and id", []string{"restore", "--node", "a", "--latest", "rp1"}, "--latest and IDs (rp1) cannot be combined"},
		{"from-node without latest", []string{"restore", "--node", "a", "rp1", "--from-node", "b"}, "--from-node goes with --latest"},
		{"from-node empty", []string{"restore", "--node", "a", "--latest", "--from-node", ""}, "--from-node: empty node name"},
		{"restore twice the same id", []string{"restore", "--node", "a", "x-postgres", "x-postgres"}, `ID "x-postgres" is given twice`},
		{"restore bad only", []string{"restore", "--node", "a", "--latest", "--only", "mongo"}, `--only "mongo": unknown kind`},
		{"restore needs yes off a terminal", []string{"restore", "--node", "a", "--latest"}, `refusing to restore node "a" without confirmation: pass --yes`},
		{"list with ids", []string{"restore", "--list", "rp1"}, "--list takes no IDs"},
		{"list with latest", []string{"restore", "--list", "--latest", "--yes"}, "--list only shows the catalog: drop --latest, --yes"},
		{"list two nodes", []string{"restore", "--list", "--node", "a", "--node", "b"}, "give exactly one node (got 2)"},
		{"backups get no id", []string{"backups", "get"}, "needs exactly one ARTIFACT_ID"},
		{"backups delete unconfirmed", []string{"backups", "delete", "x"}, "refusing to delete backups without confirmation: pass --yes"},
		{"backups delete nothing", []string{"backups", "delete", "--yes"}, "what to delete? give ARTIFACT_ID... or --restore-point ID"},
		{"backups delete both", []string{"backups", "delete", "x", "--restore-point", "y", "--yes"}, "give artifact IDs or --restore-point, not both"},
		{"upgrade no version", []string{"upgrade", "--all"}, "which version? give --to TAG"},
		{"upgrade bad tag", []string{"upgrade", "--all", "--to", "v1;rm"}, `--to "v1;rm": give an image tag`},
		{"upgrade bad service", []string{"upgrade", "db", "--all", "--to", "v2"}, `unknown service "db"`},
		{"rollback with to", []string{"upgrade", "--rollback", "--to", "v2", "--all"}, "--rollback takes no --to"},
		{"rollback bad release", []string{"upgrade", "--rollback", "--release", "XYZ", "--all"}, `--release "XYZ": a release ID is hex`},
		{"release without rollback", []string{"upgrade", "--to", "v2", "--release", "abcdefabcdef", "--all"}, "--release goes with --rollback"},
		{"upgrade skip backup with dest", []string{"upgrade", "--to", "v2", "--skip-backup", "--dest", "/x", "--all"}, "--skip-backup makes no backup"},
		{"backup bad pg format", []string{"backup", "--all", "--pg-format", "wal"}, `--pg-format "wal": use logical or physical`},
		{"decrypt no file", []string{"backup", "decrypt", "--key-file", "k"}, "needs exactly one ARTIFACT_FILE"},
		{"decrypt no key", []string{"backup", "decrypt", "a.enc"}, "--key-file is required"},
		{"decrypt -o json", []string{"backup", "decrypt", "a.enc", "--key-file", "k", "-o", "json"}, "-o names the output file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, conn, tt.args...)
			require.Equal(t, ExitUsage, code, "stderr: %s", stderr)
			require.Contains(t, stderr, tt.wantErr)
			require.Empty(t, stdout)
		})
	}
}

func TestBackupSpec(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *forlockv1.BackupSpec
	}{
		{"defaults", nil, &forlockv1.BackupSpec{PostgresFormat: forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL}},
		{"physical", []string{"--pg-format", "physical", "--only", "postgres"}, &forlockv1.BackupSpec{
			Only:           []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES},
			PostgresFormat: forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL,
		}},
		{"dir and kinds", []string{"--dest", "/srv/backups", "--only", "redis,postgres,redis"}, &forlockv1.BackupSpec{
			Only:           []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES},
			Destination:    &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: "/srv/backups"}},
			PostgresFormat: forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL,
		}},
		{"s3", []string{"--s3", "forlock-backups.eu", "--s3-prefix", "fleet/", "--only", "Config"}, &forlockv1.BackupSpec{
			Only:           []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG},
			Destination:    &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_S3{S3: &forlockv1.S3Location{Bucket: "forlock-backups.eu", Prefix: "fleet/"}}},
			PostgresFormat: forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f backupFlags
			fs := pflag.NewFlagSet("backup", pflag.ContinueOnError)
			fs.StringVar(&f.dest, "dest", "", "")
			fs.StringVar(&f.bucket, "s3", "", "")
			fs.StringVar(&f.prefix, "s3-prefix", "", "")
			fs.StringSliceVar(&f.only, "only", nil, "")
			fs.StringVar(&f.pgFormat, "pg-format", "logical", "")
			require.NoError(t, fs.Parse(tt.args))
			spec, err := f.spec(fs)
			require.NoError(t, err)
			require.True(t, proto.Equal(tt.want, spec.GetBackup()), "got %v", spec.GetBackup())
		})
	}
}

func sampleArtifact(kind forlockv1.ArtifactKind, name string, size uint64) *forlockv1.Artifact {
	return &forlockv1.Artifact{
		Id: "18a2c3d4e5f60718293a4b5c-" + kindName(kind), NodeId: "n-7f3a", NodeName: "web-1", RestorePointId: "18a2c3d4e5f60718293a4b5c",
		Kind: kind, CreatedAt: timestamppb.New(renderNow.Add(-2 * time.Hour)), SizeBytes: size,
		Sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Compression: "zstd",
		Cipher: "AES256_GCM_HKDF_1MB", KeyId: "local:1a2b3c4d", FileName: name,
		Location: "/var/backups/forlock/web-1/" + name, JobId: "18a2c3d4e5f60718293a0000",
		State: forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, PlainBytes: size * 3,
	}
}

func TestBackupTable(t *testing.T) {
	j := &forlockv1.Job{Id: "j1", Kind: "backup", State: forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED, Tasks: []*forlockv1.Task{
		{NodeName: "web-1", State: forlockv1.TaskState_TASK_STATE_SUCCEEDED, Message: "3 artifacts", Artifacts: []*forlockv1.Artifact{
			sampleArtifact(forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, "postgres_20260301_100000.dump.zst.enc", 52<<20),
			sampleArtifact(forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, "redis_20260301_100000.rdb.zst.enc", 1536),
		}},
		{NodeName: "web-2", State: forlockv1.TaskState_TASK_STATE_FAILED, Message: "backup destination full"},
	}}
	var out bytes.Buffer
	require.NoError(t, backupTable.print(&out, j))
	got := out.String()
	for _, want := range []string{
		"NODE   STATE      PROGRESS  MESSAGE\n",
		"web-2  failed     -         backup destination full\n",
		"NODE   KIND      FILE                                   SIZE      SHA256        LOCATION\n",
		"web-1  postgres  postgres_20260301_100000.dump.zst.enc  52.0 MiB  9f86d081884c  /var/backups/forlock/web-1/postgres_20260301_100000.dump.zst.enc\n",
		"web-1  redis     redis_20260301_100000.rdb.zst.enc      1.5 KiB   9f86d081884c  /var/backups/forlock/web-1/redis_20260301_100000.rdb.zst.enc\n",
	} {
		require.Contains(t, got, want)
	}
	err := backupTable.result(j)
	require.Error(t, err)
	require.Equal(t, ExitJobPartial, err.(*exitError).code) //nolint:errorlint // jobResult returns *exitError itself
}

func TestPrintRestorePointTable(t *testing.T) {
	del := sampleArtifact(forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG, "config_20260301_100000.tar.zst.enc", 512)
	del.State = forlockv1.ArtifactState_ARTIFACT_STATE_DELETED
	rps := []*forlockv1.RestorePoint{{
		Id: "18a2c3d4e5f60718293a4b5c", NodeName: "web-1", CreatedAt: timestamppb.New(renderNow.Add(-2 * time.Hour)),
		Artifacts: []*forlockv1.Artifact{
			sampleArtifact(forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, "p", 1<<20),
			sampleArtifact(forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, "r", 1<<20), del,
		},
		LastDrill: &forlockv1.DrillResult{Passed: true, StartedAt: timestamppb.New(renderNow.Add(-time.Hour))},
	}, {Id: "18a2c3d4e5f60718293a4b00", NodeName: "web-2", LastDrill: &forlockv1.DrillResult{Reason: "pg_restore", StartedAt: timestamppb.New(renderNow.Add(-5 * time.Minute))}}}
	var out bytes.Buffer
	require.NoError(t, printRestorePointTable(&out, renderNow, rps))
	require.Equal(t, ""+
		"ID                        NODE   CREATED                     KINDS                           SIZE     DRILL\n"+
		"18a2c3d4e5f60718293a4b5c  web-1  2026-03-01 10:00Z (2h ago)  postgres,redis,config(deleted)  2.0 MiB  passed 1h ago\n"+
		"18a2c3d4e5f60718293a4b00  web-2  -                           -                               0 B      FAILED 5m ago\n", out.String())
}

func TestPrintArtifactDetail(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, printArtifactDetail(&out, renderNow, sampleArtifact(forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, "postgres_20260301_100000.dump.zst.enc", 2048)))
	for _, line := range []string{
		"ID:             18a2c3d4e5f60718293a4b5c-postgres\n",
		"Kind:           postgres\n",
		"State:          available\n",
		"Node:           web-1 (n-7f3a)\n",
		"Created:        2026-03-01 10:00:00 UTC (2h ago)\n",
		"Location:       /var/backups/forlock/web-1/postgres_20260301_100000.dump.zst.enc\n",
		"Size:           2.0 KiB (2048 bytes)\n",
		"Plain size:     6.0 KiB (6144 bytes)\n",
		"SHA-256:        9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
		"Key ID:         local:1a2b3c4d\n",
	} {
		require.Contains(t, out.String(), line)
	}
}

// fakeCatalog answers GetArtifact from a map.
type fakeCatalog struct {
	forlockv1.BackupServiceClient
	arts map[string]*forlockv1.Artifact
}

func (c fakeCatalog) GetArtifact(_ context.Context, req *forlockv1.GetArtifactRequest, _ ...grpc.CallOption) (*forlockv1.GetArtifactResponse, error) {
	if a, ok := c.arts[req.GetId()]; ok {
		return &forlockv1.GetArtifactResponse{Artifact: a}, nil
	}
	return nil, status.Errorf(codes.NotFound, "artifact %q not found", req.GetId())
}

func TestResolveIDs(t *testing.T) {
	pg := sampleArtifact(forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, "p", 1)
	rd := sampleArtifact(forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, "r", 1)
	c := fakeCatalog{arts: map[string]*forlockv1.Artifact{pg.GetId(): pg, rd.GetId(): rd}}
	tests := []struct {
		name    string
		ids     []string
		want    *forlockv1.RestoreSpec
		wantErr string
	}{
		{"restore point", []string{"18a2c3d4e5f60718293a4b5c"}, &forlockv1.RestoreSpec{RestorePointId: "18a2c3d4e5f60718293a4b5c"}, ""},
		{"one artifact", []string{pg.GetId()}, &forlockv1.RestoreSpec{ArtifactIds: []string{pg.GetId()}}, ""},
		{"two artifacts", []string{rd.GetId(), pg.GetId()}, &forlockv1.RestoreSpec{ArtifactIds: []string{rd.GetId(), pg.GetId()}}, ""},
		{"one unknown of two", []string{pg.GetId(), "nope"}, nil, `artifact "nope" not found in the catalog: a restore point ID goes alone`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &forlockv1.RestoreSpec{}
			_, err := resolveIDs(context.Background(), c, spec, tt.ids)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.True(t, proto.Equal(tt.want, spec), "got %v", spec)
		})
	}
}

func TestRestorePrompt(t *testing.T) {
	pg := sampleArtifact(forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, "p", 1)
	tests := []struct {
		name string
		spec *forlockv1.RestoreSpec
		arts []*forlockv1.Artifact
		want string
	}{
		{"latest", &forlockv1.RestoreSpec{Latest: true}, nil, `Restore node "web-2" from its newest restore point (PostgreSQL, Redis and config) via cp:7443?`},
		{"from node", &forlockv1.RestoreSpec{Latest: true, SourceNode: "web-1",
			Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES}},
			nil, `from the newest restore point of node "web-1" (only postgres)`},
		{"restore point", &forlockv1.RestoreSpec{RestorePointId: "rp1"}, nil, "from restore point rp1 ("},
		{"artifacts", &forlockv1.RestoreSpec{ArtifactIds: []string{pg.GetId()}}, []*forlockv1.Artifact{pg},
			"from artifacts 18a2c3d4e5f60718293a4b5c-postgres (postgres of web-1, 2026-03-01 10:00Z)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := restorePrompt(&restoreRequest{node: "web-2", spec: tt.spec}, tt.arts, "cp:7443")
			require.Contains(t, got, tt.want)
			require.True(t, strings.HasSuffix(got, "This stops the node's API and replaces its data with the backup's. [y/N]: "), got)
		})
	}
}

func TestRestoreTable(t *testing.T) {
	j := &forlockv1.Job{Id: "j2", Kind: "restore", State: forlockv1.JobState_JOB_STATE_FAILED,
		Spec: &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Restore{Restore: &forlockv1.RestoreSpec{Latest: true,
			Artifacts: []*forlockv1.Artifact{sampleArtifact(forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, "postgres_20260301_100000.dump.zst.enc", 1024)}}}},
		Tasks: []*forlockv1.Task{{NodeName: "web-2", State: forlockv1.TaskState_TASK_STATE_FAILED, Message: "no handler for restore"}}}
	var out bytes.Buffer
	require.NoError(t, restoreTable.print(&out, j))
	require.Contains(t, out.String(), "web-2  failed  -         no handler for restore\n\nfrom these artifacts:\nNODE   KIND")
	require.Contains(t, out.String(), "web-1  postgres  postgres_20260301_100000.dump.zst.enc  1.0 KiB")
	require.Error(t, restoreTable.result(j))
}

func TestFleetDrillResult(t *testing.T) {
	require.NoError(t, fleetResult([]string{"a", "b"}, nil))
	err := fleetResult([]string{"a"}, []string{"b (drill failed)"})
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, ExitJobPartial, ee.code)
	require.EqualError(t, err, "1 of 2 drills failed: b (drill failed)")
	err = fleetResult(nil, []string{"a (x)", "b (y)"})
	require.EqualError(t, err, "every drill failed: a (x); b (y)")
	require.NotErrorAs(t, err, &ee, "none passed: the plain failure exit code")
}
