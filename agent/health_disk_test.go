package agent

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/agent/internal/hostinfo"
	"github.com/forlock/fleet/test/testenv"
)

// shell runs a command and returns its trimmed output.
func shell(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

// disk/docker against the real Engine: the data root the Engine names (as
// the docker CLI shows it) and its free space (as df shows it), and, as
// the agent wires it, not judged twice when the state directory shares its
// file system.
func TestDockerDiskOnRealEngine(t *testing.T) {
	testenv.RequireDocker(t)
	root := shell(t, "docker", "info", "--format", "{{.DockerRootDir}}")
	require.NotEmpty(t, root)
	fields := strings.Fields(shell(t, "df", "--output=size,avail", "-B1", root))
	require.Len(t, fields, 4, "df's header and one line")
	size, err := strconv.ParseFloat(fields[2], 64)
	require.NoError(t, err)
	avail, err := strconv.ParseFloat(fields[3], 64)
	require.NoError(t, err)

	rt, err := dockerrt.New(dockerrt.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	got, err := rt.RootDir(t.Context())
	require.NoError(t, err)
	require.Equal(t, root, got)

	r := checks.Disk{Check: checks.DiskDocker, Setting: "Docker's data root", Locate: dockerRoot(rt), StatFS: hostinfo.StatFS}.Run(t.Context())
	require.NotEqual(t, checks.Unknown, r.Status, r.String())
	require.Regexp(t, `^`+root+`: \d+% free \(`, r.Summary)
	require.Len(t, r.Measurements, 1)
	require.Equal(t, "free_ratio", r.Measurements[0].Name)
	require.Equal(t, root, r.Measurements[0].Subject)
	require.InDelta(t, avail/size, r.Measurements[0].Value, 0.01, "df says %v of %v bytes free", avail, size)

	// As the agent wires it, after the state directory's check.
	state := t.TempDir()
	cfg, err := Config{ControlPlane: "cp:1", Name: "n", StateDir: state}.validate()
	require.NoError(t, err)
	hc := cfg.newHealth()
	t.Cleanup(hc.close)
	var docker checks.Check
	for _, c := range hc.suite.Host {
		if c.Name() == checks.DiskDocker {
			docker = c
		}
	}
	require.NotNil(t, docker)
	r = docker.Run(t.Context())
	if shell(t, "stat", "-c", "%d", state) == shell(t, "stat", "-c", "%d", root) {
		require.Equal(t, checks.OK, r.Status, r.String())
		require.Equal(t, root+" is on the file system of disk ("+state+"), judged there", r.Summary)
		require.Empty(t, r.Measurements)
	} else {
		require.Regexp(t, `^`+root+`: \d+% free \(`, r.Summary)
		require.Len(t, r.Measurements, 1)
	}

	remote, err := dockerrt.New(dockerrt.Config{Host: "tcp://192.0.2.1:2376"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = remote.Close() })
	_, err = dockerRoot(remote)(t.Context())
	require.EqualError(t, err, "the Docker Engine at tcp://192.0.2.1:2376 is not on this host's unix socket, so its disk is not visible here: point docker_host at the local socket")
}

// The disk checks follow the backup and WAL settings: one disk/backup over
// every backup dir, and disk/wal-archive only when the WAL goes to a
// directory.
func TestDiskChecksFollowTheSettings(t *testing.T) {
	dirs := func(cfg Config) map[string][]string {
		t.Helper()
		cfg, err := cfg.validate()
		require.NoError(t, err)
		hc := cfg.newHealth()
		t.Cleanup(hc.close)
		out := map[string][]string{}
		for _, c := range hc.suite.Host {
			if d, ok := c.(checks.Disk); ok {
				out[d.Name()] = d.Dirs
			}
		}
		return out
	}
	base := Config{ControlPlane: "cp:1", Name: "n", StateDir: "/var/lib/forlock",
		Backup: BackupConfig{BackupDirs: []string{"/b1", "/b2"}, S3Endpoint: "s3:9000", S3AccessKey: "ak", S3SecretKey: "sk"}}
	require.Equal(t, map[string][]string{"disk": {"/var/lib/forlock"}, "disk/docker": nil, "disk/backup": {"/b1", "/b2"}}, dirs(base))

	wal := base
	wal.WAL = WalConfig{Archive: true, Dir: "/b2/wal"}
	require.Equal(t, []string{"/b2/wal"}, dirs(wal)["disk/wal-archive"])
	wal.WAL.Dir = ""
	require.Equal(t, []string{"/b1"}, dirs(wal)["disk/wal-archive"], "the default: the first backup dir")
	wal.WAL.Bucket = "wal"
	require.NotContains(t, dirs(wal), "disk/wal-archive", "the WAL goes to S3")
}
