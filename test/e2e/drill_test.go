package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// drillLabel marks a drill's scratch containers; its value is the name of
// the live container whose image they run (agent/internal/dockerrt).
const drillLabel = "com.forlock.fleet.drill"

// jsonDrill is a restore point's last drill in `restore --list -o json`.
type jsonDrill struct {
	Passed     bool   `json:"passed"`
	Reason     string `json:"reason"`
	JobID      string `json:"jobId"`
	DurationMs uint64 `json:"durationMs,string"`
	Counts     []struct {
		Kind     string `json:"kind"`
		Name     string `json:"name"`
		Expected uint64 `json:"expected,string"`
		Got      uint64 `json:"got,string"`
	} `json:"counts"`
}

// jsonDrilledPoint is a restore point with what a drill needs.
type jsonDrilledPoint struct {
	ID        string `json:"id"`
	Artifacts []struct {
		ID          string `json:"id"`
		Kind        string `json:"kind"`
		Location    string `json:"location"`
		Format      string `json:"postgresFormat"`
		TableCounts []struct {
			Table string `json:"table"`
			Rows  uint64 `json:"rows,string"`
		} `json:"tableCounts"`
		RedisKeys []struct {
			DB   uint32 `json:"db"`
			Keys uint64 `json:"keys,string"`
		} `json:"redisKeys"`
	} `json:"artifacts"`
	LastDrill         *jsonDrill `json:"lastDrill"`
	LastPassedDrillAt *time.Time `json:"lastPassedDrillAt"`
}

func (c *cluster) drilledPoints(node string) []jsonDrilledPoint {
	c.t.Helper()
	var resp struct {
		RestorePoints []jsonDrilledPoint `json:"restorePoints"`
	}
	out := c.ctl("restore", "--list", "--node", node, "-o", "json")
	require.NoError(c.t, json.Unmarshal([]byte(out), &resp), "%s", out)
	return resp.RestorePoints
}

// tableCounts counts the rows of every table of the node's live database
// outside the system schemas, in one transaction, by the test's own query.
func (n *testNode) tableCounts(t *testing.T) map[string]uint64 {
	t.Helper()
	psql := func(sql string) string {
		out, err := exec.Command("docker", "exec", "-u", "postgres", n.name+"-postgres", "psql", "-X", "-A", "-t", "-q",
			"-v", "ON_ERROR_STOP=1", "-d", "forlock", "-c", sql).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.TrimSpace(string(out))
	}
	tables := strings.Fields(psql(`SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`))
	require.NotEmpty(t, tables)
	var q []string
	for _, tb := range tables {
		q = append(q, fmt.Sprintf("SELECT '%s', count(*) FROM %s", tb, tb))
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(psql("BEGIN ISOLATION LEVEL REPEATABLE READ; "+strings.Join(q, " UNION ALL ")+"; COMMIT"), "\n") {
		name, rows, ok := strings.Cut(line, "|")
		require.True(t, ok, "psql line %q", line)
		v, err := strconv.ParseUint(rows, 10, 64)
		require.NoError(t, err)
		out[name] = v
	}
	return out
}

// redisKeys is the key count of every non-empty database of the node's
// live Redis ("db0": 12).
func (n *testNode) redisKeys(t *testing.T) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for db := range 16 {
		rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + n.rdPort, DB: db})
		size, err := rc.DBSize(context.Background()).Result()
		_ = rc.Close()
		require.NoError(t, err)
		if size > 0 {
			out[fmt.Sprintf("db%d", db)] = uint64(size)
		}
	}
	return out
}

// liveCounts are the node's real table and key counts, taken twice around
// f: they must not change, so they are the counts at the time f ran.
func (n *testNode) liveCounts(t *testing.T, f func()) (map[string]uint64, map[string]uint64) {
	t.Helper()
	tables, keys := n.tableCounts(t), n.redisKeys(t)
	f()
	require.Equal(t, tables, n.tableCounts(t), "nothing writes to the node's database while it is backed up")
	require.Equal(t, keys, n.redisKeys(t), "nothing writes to the node's Redis while it is backed up")
	return tables, keys
}

// scratchSeen is a scratch container a drill started, as the test saw it.
type scratchSeen struct {
	ID, Name, NetworkMode, Image string
	Healthcheck                  string
	NanoCPUs, Memory             int64
	Volumes                      []string
}

// scratchWatch records the drill scratch containers beside a node while it
// runs, by the drill's label, polling the Engine.
type scratchWatch struct {
	mu    sync.Mutex
	seen  map[string]scratchSeen // by ID
	taken map[string]bool
	stop  chan struct{}
	done  chan struct{}
}

// scratchList lists the IDs of the containers labelled as drills beside
// the node's postgres and redis containers.
func (n *testNode) scratchList() ([]string, error) {
	var ids []string
	for _, svc := range []string{"postgres", "redis"} {
		out, err := exec.Command("docker", "ps", "-a", "-q", "--no-trunc", "--filter", "label="+drillLabel+"="+n.name+"-"+svc).Output()
		if err != nil {
			return nil, err
		}
		ids = append(ids, strings.Fields(string(out))...)
	}
	return ids, nil
}

// inspectScratch reads what the test checks of a scratch container; it
// fails when the container is gone.
func inspectScratch(id string) (scratchSeen, error) {
	out, err := exec.Command("docker", "inspect", "-f",
		"{{.Name}}|{{.HostConfig.NetworkMode}}|{{.Image}}|{{.HostConfig.NanoCpus}}|{{.HostConfig.Memory}}|{{json .Config.Healthcheck.Test}}|{{range .Mounts}}{{.Name}} {{end}}", id).Output()
	if err != nil {
		return scratchSeen{}, err
	}
	f := strings.SplitN(strings.TrimSpace(string(out)), "|", 7)
	if len(f) != 7 {
		return scratchSeen{}, fmt.Errorf("docker inspect %s: %q", id, out)
	}
	cpus, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return scratchSeen{}, err
	}
	mem, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil {
		return scratchSeen{}, err
	}
	return scratchSeen{ID: id, Name: strings.TrimPrefix(f[0], "/"), NetworkMode: f[1], Image: f[2],
		NanoCPUs: cpus, Memory: mem, Healthcheck: f[5], Volumes: strings.Fields(f[6])}, nil
}

func (n *testNode) watchScratch(t *testing.T) *scratchWatch {
	t.Helper()
	w := &scratchWatch{seen: map[string]scratchSeen{}, taken: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			ids, _ := n.scratchList() // a failed poll: the next one sees it
			for _, id := range ids {
				w.mu.Lock()
				_, known := w.seen[id]
				w.mu.Unlock()
				if known {
					continue
				}
				// Gone already: then it is not seen, and the drill's
				// subtest says which one it missed.
				if s, err := inspectScratch(id); err == nil {
					w.mu.Lock()
					w.seen[id] = s
					w.mu.Unlock()
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(w.end)
	return w
}

// end stops the watch; it may be called more than once.
func (w *scratchWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// take returns what was seen since the last take.
func (w *scratchWatch) take() []scratchSeen {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []scratchSeen
	for id, s := range w.seen {
		if !w.taken[id] {
			w.taken[id] = true
			out = append(out, s)
		}
	}
	return out
}

// requireScratchGone checks the scratch containers a drill ran: each in the
// image of the live container it stands beside, with no network and with
// CPU and memory limits; and that none of them, nor their volumes, is left.
func (n *testNode) requireScratchGone(t *testing.T, seen []scratchSeen, services ...string) {
	t.Helper()
	var started []string
	for _, s := range seen {
		svc := ""
		for _, name := range []string{"postgres", "redis"} {
			if strings.HasPrefix(s.Name, n.name+"-"+name+"-") {
				svc = name
			}
		}
		require.NotEmpty(t, svc, "scratch container %s is named after the live one", s.Name)
		started = append(started, svc)
		img, err := exec.Command("docker", "inspect", "-f", "{{.Image}}", n.name+"-"+svc).Output()
		require.NoError(t, err)
		require.Equal(t, strings.TrimSpace(string(img)), s.Image, "%s runs the live %s container's image", s.Name, svc)
		require.Equal(t, "none", s.NetworkMode, "%s has no network", s.Name)
		require.Positive(t, s.NanoCPUs, "%s has a CPU limit", s.Name)
		require.Positive(t, s.Memory, "%s has a memory limit", s.Name)
		// The image's healthcheck probes a server that is not there; a
		// timed-out probe orphaned to a scratch PostgreSQL (PID 1) made it
		// restart as after a crash, failing drills on a loaded host.
		require.JSONEq(t, `["NONE"]`, s.Healthcheck, "%s runs no healthcheck", s.Name)
		require.Error(t, exec.Command("docker", "inspect", s.ID).Run(), "scratch container %s was removed", s.Name)
		for _, v := range s.Volumes {
			require.Error(t, exec.Command("docker", "volume", "inspect", v).Run(), "volume %s of scratch container %s was removed", v, s.Name)
		}
	}
	require.ElementsMatch(t, services, started, "the drill's scratch containers: %+v", seen)
	left, err := n.scratchList()
	require.NoError(t, err)
	require.Empty(t, left, "no scratch container is left")
}

// networks lists the Engine's networks named after the node.
func (n *testNode) networks(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("docker", "network", "ls", "-q", "--no-trunc", "--filter", "name="+n.name).Output()
	require.NoError(t, err)
	return string(out)
}

// requireDrillCounts checks a passed drill's counts against the node's
// real counts: each table and Redis database, expected and got.
func requireDrillCounts(t *testing.T, d *jsonDrill, tables, keys map[string]uint64) {
	t.Helper()
	gotTables, gotKeys := map[string]uint64{}, map[string]uint64{}
	for _, c := range d.Counts {
		require.Equal(t, c.Expected, c.Got, "%s %s: the recorded count and the scratch server's", c.Kind, c.Name)
		switch c.Kind {
		case "ARTIFACT_KIND_POSTGRES":
			gotTables[c.Name] = c.Got
		case "ARTIFACT_KIND_REDIS":
			gotKeys[c.Name] = c.Got
		default:
			t.Fatalf("a count of kind %s", c.Kind)
		}
	}
	require.Equal(t, tables, gotTables, "the drill's table counts are the real ones at backup time")
	if keys != nil {
		require.Equal(t, keys, gotKeys, "the drill's key counts are the real ones at backup time")
	}
}

// statusDrillLine is status's drill flag for the node, if any.
func (c *cluster) statusDrillLine(node string) string {
	c.t.Helper()
	out := c.ctl("status")
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "! "+node+":") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// TestRestoreDrill drills restore points of a real test node through the
// CLI: a good one passes with the node's real counts at backup time; a
// dump that decrypts and checksums but is not a dump (pg_dump wrote a
// truncated one and succeeded) fails with pg_restore's reason, stored in
// the catalog and flagged by status; a physical base backup passes; and the
// live containers are never touched, no scratch container or volume
// outlives a drill.
func TestRestoreDrill(t *testing.T) {
	requireTestNodeImages(t)
	start := time.Now()
	c := startCluster(t)
	backups := filepath.Join(t.TempDir(), "backups")
	n := c.upTestNode("fl-drill", "--backup-dirs", backups, "--compose-dir", repoPath("deploy", "testnode"))

	out, err := exec.Command("docker", "exec", n.name+"-api", "forlockapi", "load", "--mb", "2").CombinedOutput()
	require.NoError(t, err, "%s", out)
	n.insertRows(t, "drill", 137)
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + n.rdPort, DB: 3})
	for i := range 42 {
		require.NoError(t, rc.Set(context.Background(), fmt.Sprintf("drill:%d", i), i, 0).Err())
	}
	_ = rc.Close()

	stamps, nets := n.containerStamps(t), n.networks(t)
	watch := n.watchScratch(t)
	durations := map[string]time.Duration{}

	t.Run("a good restore point passes with the real counts at backup time", func(t *testing.T) {
		tables, keys := n.liveCounts(t, func() {
			out, err := c.ctlErr("backup", "--node", n.name)
			require.NoError(t, err, "%s", out)
		})
		require.Contains(t, keys, "db3")
		require.Equal(t, uint64(42), keys["db3"])
		require.Contains(t, c.statusDrillLine(n.name), "no restore point ever passed a drill", "status flags a node never drilled")

		t0 := time.Now()
		out, err := c.ctlErr("backups", "verify", "--node", n.name, "--latest")
		require.NoError(t, err, "%s", out)
		wall := time.Since(t0)
		require.Contains(t, out, "drill passed")
		require.Contains(t, out, fmt.Sprintf("db3: expected %d, got %d ok", keys["db3"], keys["db3"]), "the CLI reports the counts")

		rps := c.drilledPoints(n.name)
		require.Len(t, rps, 1)
		rp := rps[0]
		require.Len(t, rp.Artifacts, 3)
		for _, a := range rp.Artifacts {
			switch a.Kind {
			case "ARTIFACT_KIND_POSTGRES":
				rec := map[string]uint64{}
				for _, tc := range a.TableCounts {
					rec[tc.Table] = tc.Rows
				}
				require.Equal(t, tables, rec, "the counts recorded at backup time")
			case "ARTIFACT_KIND_REDIS":
				rec := map[string]uint64{}
				for _, k := range a.RedisKeys {
					rec[fmt.Sprintf("db%d", k.DB)] = k.Keys
				}
				require.Equal(t, keys, rec, "the key counts read from the RDB at backup time")
			}
		}
		d := rp.LastDrill
		require.NotNil(t, d, "the catalog stores the drill")
		require.True(t, d.Passed, d.Reason)
		require.Empty(t, d.Reason)
		require.NotEmpty(t, d.JobID)
		require.NotNil(t, rp.LastPassedDrillAt)
		requireDrillCounts(t, d, tables, keys)
		durations["logical"] = time.Duration(d.DurationMs) * time.Millisecond //nolint:gosec // a duration
		t.Logf("drill passed in %s (CLI wall %s): %d tables, Redis %v", durations["logical"], wall.Round(time.Millisecond), len(tables), keys)

		require.Empty(t, c.statusDrillLine(n.name), "status no longer flags the node")
		require.Regexp(t, rp.ID+`.*passed`, c.ctl("restore", "--list", "--node", n.name), "the restore point's DRILL column")
		n.requireScratchGone(t, watch.take(), "postgres", "redis")
	})

	t.Run("a dump that decrypts and checksums but is not a dump fails with pg_restore's reason", func(t *testing.T) {
		// pg_dump writes the first 4 KiB of the dump and succeeds: a
		// damaged dump the agent seals, checksums and catalogs like any
		// other (the drill's scratch containers run the image, which keeps
		// the real pg_dump).
		pg := n.name + "-postgres"
		docker(t, "exec", "-u", "root", pg, "sh", "-c",
			`set -e; cd "$(dirname "$(command -v pg_dump)")"; mv pg_dump pg_dump.real; `+
				`printf '#!/bin/sh\n"$(dirname "$0")"/pg_dump.real "$@" | head -c 4096\n' >pg_dump; chmod 755 pg_dump`)
		restored := false
		restore := func() {
			if !restored {
				restored = true
				docker(t, "exec", "-u", "root", pg, "sh", "-c", `set -e; cd "$(dirname "$(command -v pg_dump.real)")"; mv pg_dump.real pg_dump`)
			}
		}
		defer restore()
		out, err := c.ctlErr("backup", "--node", n.name, "--only", "postgres")
		require.NoError(t, err, "%s", out)
		restore()

		rps := c.drilledPoints(n.name)
		require.Len(t, rps, 2)
		bad := rps[0]
		require.Len(t, bad.Artifacts, 1)
		// It decrypts and checksums with the control plane's key, and holds
		// the damaged dump.
		plain, err := c.ctlErr("backup", "decrypt", bad.Artifacts[0].Location, "--key-file", filepath.Join(c.dataDir, "backup-kek.json"))
		require.NoError(t, err)
		require.Len(t, plain, 4096)
		require.True(t, strings.HasPrefix(plain, "PGDMP"), "the start of a custom-format dump")

		out, err = c.ctlErr("backups", "verify", "--node", n.name, "--latest")
		require.Error(t, err, "%s", out)
		msg := out + err.Error()
		require.Contains(t, err.Error(), "exit status 1")
		require.Contains(t, msg, "drill failed")
		require.Contains(t, msg, "pg_restore: error:", "pg_restore's own reason")

		d := c.drilledPoints(n.name)[0].LastDrill
		require.NotNil(t, d, "the catalog stores the failed drill")
		require.False(t, d.Passed)
		require.Contains(t, d.Reason, "postgres artifact "+bad.Artifacts[0].ID)
		require.Contains(t, d.Reason, "pg_restore: error:")
		require.Nil(t, c.drilledPoints(n.name)[0].LastPassedDrillAt)
		durations["damaged"] = time.Duration(d.DurationMs) * time.Millisecond //nolint:gosec // a duration
		t.Logf("drill failed in %s: %s", durations["damaged"], d.Reason)

		flag := c.statusDrillLine(n.name)
		require.Contains(t, flag, n.name+": last drill FAILED")
		require.Contains(t, flag, "pg_restore: error:", "status says why")
		require.Regexp(t, bad.ID+`.*FAILED`, c.ctl("restore", "--list", "--node", n.name))
		n.requireScratchGone(t, watch.take(), "postgres")
	})

	t.Run("a physical base backup passes its drill", func(t *testing.T) {
		tables, _ := n.liveCounts(t, func() {
			out, err := c.ctlErr("backup", "--node", n.name, "--only", "postgres", "--pg-format", "physical")
			require.NoError(t, err, "%s", out)
		})
		rps := c.drilledPoints(n.name)
		require.Len(t, rps, 3)
		require.Equal(t, "POSTGRES_FORMAT_PHYSICAL", rps[0].Artifacts[0].Format)

		out, err := c.ctlErr("backups", "verify", "--node", n.name, "--latest")
		require.NoError(t, err, "%s", out)
		d := c.drilledPoints(n.name)[0].LastDrill
		require.NotNil(t, d)
		require.True(t, d.Passed, d.Reason)
		// The drill compares no counts for a base backup (it has no
		// snapshot to count in); nothing wrote during this one, so the
		// recovered server must hold exactly the rows counted around it.
		requireDrillCounts(t, d, tables, nil)
		durations["physical"] = time.Duration(d.DurationMs) * time.Millisecond //nolint:gosec // a duration
		t.Logf("physical drill passed in %s", durations["physical"])
		require.Empty(t, c.statusDrillLine(n.name), "the newest drill passed: status no longer flags the node")
		n.requireScratchGone(t, watch.take(), "postgres")
	})

	watch.end()
	require.Equal(t, stamps, n.containerStamps(t), "the live containers keep their IDs and start times")
	require.Equal(t, nets, n.networks(t), "no network was made")
	t.Logf("drills: %v; whole test %s", durations, time.Since(start).Round(time.Second))
}
