package backup

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"time"

	"github.com/forlock/fleet/agent/internal/dbsource"
)

// A physical restore replaces the cluster's data directory with the base
// backup's. It stages the backup beside the live data while the server still
// runs, so the API is down only for the swap and the server's start:
//
//  1. stage: what an interrupted staging left is removed, then the tar is
//     copied into <data dir>/.forlock-incoming of the running postgres
//     container as it is read, checksummed and decrypted, each entry
//     checked on the way (a regular file or a directory, a clean relative
//     name), and its PG_VERSION compared with the server's;
//  2. with the API and then PostgreSQL stopped, a one-off container with the
//     postgres container's volumes moves the live files into
//     .forlock-previous and the staged ones into their place;
//  3. PostgreSQL starts (recovering from the backup's label and WAL) and must
//     answer; if it does not, the previous files are put back and started;
//  4. .forlock-previous is removed.
//
// Step 1 changes nothing the server uses and is in restore_stage.go (the
// entries are checked by stageTar, stagetar.go); steps 2 to 4 are
// swapPhysical, below, the only part that runs with the server stopped.
const (
	incomingDir = ".forlock-incoming"
	previousDir = ".forlock-previous"
)

// swapScript moves the live files of the data directory $1 into
// .forlock-previous and the staged ones into their place.
const swapScript = `set -eu
cd "$1"
[ -d ` + incomingDir + ` ] || { echo "no staged backup in $1: is the data directory on a volume?" >&2; exit 1; }
mkdir ` + previousDir + `
for f in * .[!.]* ..?*; do
  case "$f" in ` + previousDir + `|` + incomingDir + `) continue ;; esac
  if [ -e "$f" ] || [ -L "$f" ]; then mv -- "$f" ` + previousDir + `/; fi
done
cd ` + incomingDir + `
for f in * .[!.]* ..?*; do
  if [ -e "$f" ] || [ -L "$f" ]; then mv -- "$f" ../; fi
done
cd .. && rmdir ` + incomingDir + `
`

// undoScript removes what a failed swap put in $1 and moves the files of
// .forlock-previous back.
const undoScript = `set -eu
cd "$1"
[ -d ` + previousDir + ` ] || { echo "no previous data in $1" >&2; exit 1; }
for f in * .[!.]* ..?*; do
  if [ "$f" = ` + previousDir + ` ]; then continue; fi
  if [ -e "$f" ] || [ -L "$f" ]; then rm -rf -- "$f"; fi
done
cd ` + previousDir + `
for f in * .[!.]* ..?*; do
  if [ -e "$f" ] || [ -L "$f" ]; then mv -- "$f" ../; fi
done
cd .. && rmdir ` + previousDir

// helper runs script in a one-off container beside postgres with the data
// directory as $1.
func (c *core) helper(ctx context.Context, what, script, dataDir string) error {
	res, err := c.cfg.Docker.RunBeside(ctx, "postgres", "", []string{"sh", "-c", script, "sh", dataDir})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return res.Err(what)
}

// postgresMajor returns the running server's major version, e.g. "15".
func (c *core) postgresMajor(ctx context.Context) (string, error) {
	v, err := dbsource.Postgres{Exec: c.cfg.Docker}.Show(ctx, "server_version_num")
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100000 {
		return "", fmt.Errorf("the server reports version %q: physical backups need PostgreSQL 10 or later", v)
	}
	return strconv.Itoa(n / 10000), nil
}

// swapPhysical replaces the data directory's files with the staged ones,
// with the server stopped, and starts it; with pitr, it then waits for the
// end of recovery (waitRecovery). On any failure it puts the previous
// files back and starts the server on them.
func (c *core) swapPhysical(ctx context.Context, dataDir string, pitr bool, p *progress) (err error) {
	d := c.cfg.Docker
	p.step("stop postgres", 70, nil)
	if err := d.Stop(ctx, "postgres", c.cfg.StopTimeout); err != nil {
		return errors.Join(fmt.Errorf("stop the postgres container: %w", err), c.startPostgres(ctx))
	}
	c.cfg.Logger.Info("restore: postgres stopped")
	// From here on, cleanup runs whatever happens to ctx.
	bg := context.WithoutCancel(ctx)
	p.step("swap data directory", 72, nil)
	if err := c.helper(ctx, "swap in the base backup", swapScript, dataDir); err != nil {
		return errors.Join(err, c.undoSwap(bg, dataDir))
	}
	p.step("start postgres", 75, nil)
	started := time.Now()
	err = c.startPostgres(ctx)
	if err == nil && pitr {
		err = c.waitRecovery(ctx, dataDir, p)
	}
	if err != nil {
		if pitr {
			if why := c.postgresReason(bg, started); why != "" {
				err = fmt.Errorf("%w; PostgreSQL says: %s", err, why)
			}
		}
		_ = d.Stop(bg, "postgres", c.cfg.StopTimeout)
		return errors.Join(fmt.Errorf("the restored cluster did not start: %w", err), c.undoSwap(bg, dataDir))
	}
	c.cfg.Logger.Info("restore: postgres started on the base backup")
	cctx, cancel := context.WithTimeout(bg, cleanupTimeout)
	defer cancel()
	if err := c.helper(cctx, "remove the previous data", `rm -rf -- "$1/`+previousDir+`"`, dataDir); err != nil {
		c.cfg.Logger.Warn("restore: the previous data is left; remove it by hand", "path", path.Join(dataDir, previousDir), "error", err.Error())
	}
	return nil
}

// undoSwap puts the previous files back and starts the server on them.
func (c *core) undoSwap(ctx context.Context, dataDir string) error {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout+c.cfg.HealthTimeout)
	defer cancel()
	if err := c.helper(ctx, "put the previous data back", undoScript, dataDir); err != nil {
		return fmt.Errorf("%w: the previous files are in %s", err, path.Join(dataDir, previousDir))
	}
	if err := c.startPostgres(ctx); err != nil {
		return fmt.Errorf("the previous data is back but: %w", err)
	}
	c.cfg.Logger.Warn("restore: the previous data is back and postgres started on it")
	return errors.New("the previous data is back in place and PostgreSQL runs on it")
}

// startPostgres starts the postgres container and waits until the server
// answers a query.
func (c *core) startPostgres(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.HealthTimeout)
	defer cancel()
	if err := c.cfg.Docker.Start(ctx, "postgres"); err != nil {
		return fmt.Errorf("start the postgres container: %w", err)
	}
	pg := dbsource.Postgres{Exec: c.cfg.Docker}
	for {
		// A server that exits (a restart policy then restarts it) will not
		// come up by waiting: fail at once.
		st, err := c.cfg.Docker.State(ctx, "postgres")
		switch {
		case err != nil:
		case st.Status == "exited" || st.Status == "dead" || st.Status == "restarting":
			return fmt.Errorf("the postgres container %s (see docker logs %s)", st.Status, st.Name)
		case st.Running() && st.Health != "unhealthy":
			if _, err = pg.Show(ctx, "server_version_num"); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("postgres does not answer after %s: %w", c.cfg.HealthTimeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
