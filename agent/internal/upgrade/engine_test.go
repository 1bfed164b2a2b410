package upgrade

import (
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// TestUpgradeLifecycle runs the cases in order on one real test
// node whose API comes from a real registry: v1 -> v2, v2 -> v2 (nothing
// to do), v2 -> broken v3 (rolled back), Rollback to v1 (pulled by
// digest), registry down, a recreated PostgreSQL keeping its data, and
// recovery from an interrupted run.
func TestUpgradeLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("real Docker test node and registry")
	}
	reg := startRegistry(t)
	n := startNode(t, reg)
	ctx := t.Context()
	repo := reg.endpoint + "/forlock/api"

	docker(t, "exec", n.name+"-api", "forlockapi", "load", "--mb", "1")
	data := n.summary(t)
	pgVolume := docker(t, "inspect", "-f", `{{range .Mounts}}{{.Name}}{{end}}`, n.name+"-postgres")
	v, err := n.apiHealth(ctx)
	require.NoError(t, err)
	require.Equal(t, "v1", v)

	opts := func(timeout time.Duration) Options {
		return Options{Auth: reg.auth(), HealthTimeout: timeout, Health: n.health}
	}
	var v1 Release // the release before the first upgrade

	require.True(t, t.Run("v1 to v2", func(t *testing.T) {
		before := n.ids(t)
		var mu sync.Mutex
		var events []Event
		at := map[string]time.Time{}
		p := n.poll(50 * time.Millisecond)
		start := time.Now()
		o := opts(time.Minute)
		o.Progress = func(e Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e)
			at[e.Step] = time.Now()
		}
		res, err := n.up.Upgrade(ctx, Spec{Services: []string{"api"}, Target: "v2", Options: o})
		took := time.Since(start)
		polls, failed, gap := p.stop()
		require.NoError(t, err)
		require.False(t, res.RolledBack, res.Reason)
		require.Equal(t, []string{"api"}, res.Changed)
		mu.Lock()
		t.Logf("API unavailability during the v1 -> v2 upgrade (polled through nginx every 50 ms): %d of %d polls failed, longest gap %s; "+
			"upgrade took %s (pull %s, stop to start %s, start to healthy incl. the API check through nginx %s)",
			failed, polls, gap.Round(time.Millisecond), took.Round(time.Millisecond),
			at["stop"].Sub(at["pull"]).Round(time.Millisecond), at["start"].Sub(at["stop"]).Round(time.Millisecond),
			at["healthy"].Sub(at["start"]).Round(time.Millisecond))
		mu.Unlock()

		v1 = res.Before
		b, _ := res.Before.Service("api")
		a, _ := res.After.Service("api")
		require.Equal(t, repo+":latest", b.Image)
		require.Equal(t, repo+"@"+reg.digests["v1"], b.RepoDigest)
		require.Equal(t, repo+":v2", a.Image)
		require.Equal(t, repo+"@"+reg.digests["v2"], a.RepoDigest)
		require.NotEqual(t, b.ImageID, a.ImageID)

		// Identical configuration, new image: only the image's own values
		// changed.
		require.Equal(t, b.HostConfig.RestartPolicy, a.HostConfig.RestartPolicy)
		require.Equal(t, b.Config.Labels["com.docker.compose.service"], a.Config.Labels["com.docker.compose.service"])
		require.Equal(t, "v2", a.Config.Labels["org.forlock.test.release"])
		require.Contains(t, a.Config.Env, "FORLOCK_API_VERSION=v2")
		require.NotContains(t, a.Config.Env, "FORLOCK_API_VERSION=v1")
		require.Equal(t, b.Config.Hostname, a.Config.Hostname)
		require.Equal(t, b.Networking, a.Networking, "same networks and aliases")

		v, err := n.apiHealth(ctx)
		require.NoError(t, err)
		require.Equal(t, "v2", v)
		after := n.ids(t)
		require.NotEqual(t, before["api"], after["api"])
		for _, svc := range []string{"postgres", "redis", "nginx"} {
			require.Equal(t, before[svc], after[svc], "%s untouched", svc)
		}
		n.noPrev(t)
		mu.Lock()
		defer mu.Unlock()
		var steps []string
		for _, e := range events {
			steps = append(steps, e.Step)
		}
		require.Equal(t, []string{"pull", "stop", "create", "start", "health", "healthy", "commit"}, steps)
	}), "later steps need this one")

	require.True(t, t.Run("v2 again changes nothing", func(t *testing.T) {
		before := n.ids(t)
		res, err := n.up.Upgrade(ctx, Spec{Services: []string{"api"}, Target: "v2", Options: opts(time.Minute)})
		require.NoError(t, err)
		require.Equal(t, []string{"api"}, res.Unchanged)
		require.Empty(t, res.Changed)
		require.Equal(t, before, n.ids(t))
	}), "later steps need this one")

	require.True(t, t.Run("broken v3 is rolled back to v2", func(t *testing.T) {
		before := n.ids(t)
		const timeout = 15 * time.Second
		start := time.Now()
		res, err := n.up.Upgrade(ctx, Spec{Services: []string{"api"}, Target: "v3", Options: opts(timeout)})
		took := time.Since(start)
		require.NoError(t, err)
		require.True(t, res.RolledBack)
		require.Contains(t, res.Reason, "api: not healthy within 15s")
		require.Contains(t, res.Reason, "503")
		require.Empty(t, res.Changed)
		t.Logf("v2 -> v3: rolled back in %s (health timeout %s): %s", took.Round(time.Millisecond), timeout, res.Reason)
		// The health timeout, then the restore: stop, rename, start and
		// the old container's health.
		require.Less(t, took, timeout+30*time.Second)

		require.Equal(t, before, n.ids(t), "the same v2 container is back")
		a, _ := res.After.Service("api")
		require.Equal(t, repo+"@"+reg.digests["v2"], a.RepoDigest)
		v, err := n.apiHealth(ctx)
		require.NoError(t, err)
		require.Equal(t, "v2", v)
		require.Equal(t, "healthy", docker(t, "inspect", "-f", "{{.State.Health.Status}}", n.name+"-api"))
		n.noPrev(t)
	}), "later steps need this one")

	require.True(t, t.Run("rollback to v1 pulls it by digest", func(t *testing.T) {
		// v1 is no longer used by a container: drop it so that only its
		// digest can bring it back.
		docker(t, "rmi", repo+":latest", repo+":v1")
		require.Error(t, exec.Command("docker", "image", "inspect", repo+"@"+reg.digests["v1"]).Run())

		res, err := n.up.Rollback(ctx, v1, opts(time.Minute))
		require.NoError(t, err)
		require.False(t, res.RolledBack, res.Reason)
		require.Equal(t, []string{"api"}, res.Changed)
		require.ElementsMatch(t, []string{"postgres", "redis", "nginx"}, res.Unchanged)
		a, _ := res.After.Service("api")
		b, _ := v1.Service("api")
		require.Equal(t, b.ImageID, a.ImageID)
		require.Equal(t, repo+"@"+reg.digests["v1"], a.Image, "created from the digest it was pulled by")
		v, err := n.apiHealth(ctx)
		require.NoError(t, err)
		require.Equal(t, "v1", v)
		n.noPrev(t)
	}), "later steps need this one")

	require.True(t, t.Run("registry down changes nothing", func(t *testing.T) {
		before := n.ids(t)
		reg.stop(t)
		_, err := n.up.Upgrade(ctx, Spec{Services: []string{"api"}, Target: "v2", Options: opts(time.Minute)})
		require.ErrorIs(t, err, ErrPull)
		require.Contains(t, err.Error(), "nothing was changed")
		require.Contains(t, err.Error(), "from registry "+reg.endpoint)
		require.Contains(t, err.Error(), `user "`+registryUser+`"`)
		require.NotContains(t, err.Error(), registryPassword)
		t.Logf("registry down: %v", err)
		require.Equal(t, before, n.ids(t))
		_, err = n.apiHealth(ctx)
		require.NoError(t, err)
		reg.start(t)
	}), "later steps need this one")

	require.True(t, t.Run("postgres recreated keeps its data", func(t *testing.T) {
		// A locally built variant of the PostgreSQL image stands in for a
		// new minor release: Rollback to a release naming it recreates the
		// container with the recorded configuration.
		tag := "forlock-test/postgres:h2-" + suffix()
		build := exec.Command("docker", "build", "-q", "-t", tag, "-")
		build.Env = append(build.Environ(), "DOCKER_BUILDKIT=0")
		build.Stdin = strings.NewReader("FROM forlock-test/postgres:latest\nLABEL org.forlock.test.release=pg-minor\n")
		out, err := build.CombinedOutput()
		require.NoError(t, err, "%s", out)
		t.Cleanup(func() { _ = exec.Command("docker", "rmi", tag).Run() })
		newID := docker(t, "image", "inspect", "-f", "{{.Id}}", tag)

		cur, err := n.up.Current(ctx)
		require.NoError(t, err)
		target := cur
		target.Services = nil
		pg, _ := cur.Service("postgres")
		pg.Image, pg.ImageID, pg.RepoDigest = tag, newID, ""
		target.Services = append(target.Services, pg)
		res, err := n.up.Rollback(ctx, target, opts(time.Minute))
		require.NoError(t, err)
		require.False(t, res.RolledBack, res.Reason)
		require.Equal(t, []string{"postgres"}, res.Changed)
		require.Equal(t, pgVolume, docker(t, "inspect", "-f", `{{range .Mounts}}{{.Name}}{{end}}`, n.name+"-postgres"))
		require.Equal(t, data, n.summary(t), "the vault survived")

		// And back to the original image.
		res, err = n.up.Rollback(ctx, cur, opts(time.Minute))
		require.NoError(t, err)
		require.Equal(t, []string{"postgres"}, res.Changed)
		require.Equal(t, data, n.summary(t))
	}), "later steps need this one")

	require.True(t, t.Run("an interrupted run is put back first", func(t *testing.T) {
		before := n.ids(t)
		cur, err := n.up.Current(ctx)
		require.NoError(t, err)
		api := n.name + "-api"
		for _, created := range []bool{true, false} {
			// As if the agent died after renaming the old container, and
			// after creating the new one or before.
			docker(t, "stop", api)
			docker(t, "rename", api, api+PrevSuffix)
			if created {
				docker(t, "create", "--name", api, "--network", "none", "forlock-test/api:latest")
			}
			res, err := n.up.Rollback(ctx, cur, opts(time.Minute))
			require.NoError(t, err, "created %v", created)
			require.Equal(t, []string{"api"}, res.Recovered)
			require.Empty(t, res.Changed)
			require.Equal(t, before, n.ids(t))
			_, err = n.apiHealth(ctx)
			require.NoError(t, err)
			n.noPrev(t)
		}
	}), "later steps need this one")

	require.Equal(t, data, n.summary(t), "the vault survived every step")
}

func TestBusy(t *testing.T) {
	u, err := New(Config{Docker: engine(t)})
	require.NoError(t, err)
	u.busy.Lock()
	defer u.busy.Unlock()
	_, err = u.Upgrade(t.Context(), Spec{Target: "v2"})
	require.ErrorIs(t, err, ErrBusy)
	_, err = u.Rollback(t.Context(), Release{}, Options{})
	require.ErrorIs(t, err, ErrBusy)
}

func TestValidation(t *testing.T) {
	_, err := New(Config{})
	require.ErrorContains(t, err, "Docker is required")
	_, err = New(Config{Docker: engine(t), Containers: map[string]string{"mysql": "x"}})
	require.ErrorContains(t, err, `unknown service "mysql"`)
	u, err := New(Config{Docker: engine(t)})
	require.NoError(t, err)
	_, err = u.Upgrade(t.Context(), Spec{Target: "not a tag"})
	require.ErrorContains(t, err, "want an image tag")
	_, err = u.Upgrade(t.Context(), Spec{Target: "v2", Services: []string{"mysql"}})
	require.ErrorContains(t, err, "unknown service")
	_, err = u.Rollback(t.Context(), Release{}, Options{})
	require.ErrorContains(t, err, "records no services")
	require.ErrorIs(t, pullError("r:1/a:v2", Options{}.Auth, errors.New("x")), ErrPull)
}

// engine is a client of the local engine; New does not contact it.
func engine(t *testing.T) *dockerrt.Runtime {
	t.Helper()
	rt, err := dockerrt.New(dockerrt.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}
