package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/forlock/fleet/agent/internal/backupstore"
	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/internal/artifact"
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

// prepareScript readies the data directory $1 for staging: it refuses
// while an earlier restore's previous files are there, and removes what an
// interrupted staging left (its files must not mix with this backup's).
const prepareScript = `set -eu
cd "$1"
[ ! -e ` + previousDir + ` ] || { echo "$1/` + previousDir + ` is left from an earlier restore: check the current database, then remove it by hand" >&2; exit 1; }
rm -rf -- ` + incomingDir

// checkScript succeeds when the staged backup is visible beside the
// postgres container, so the data directory is on a volume.
const checkScript = `[ -d "$1/` + incomingDir + `" ] || { echo "the data directory $1 is not on a volume: a physical restore needs it to be (restore a logical backup instead)" >&2; exit 1; }`

// errStageStopped ends the verification when staging stopped first, and
// errCopyEnded the staging when the copy into the container did.
var (
	errStageStopped = errors.New("staging stopped")
	errCopyEnded    = errors.New("the copy into the container ended")
)

// verifyAndStage is verify and staging in one pass: the artifact is read
// once, decrypted (each segment authenticated before its plaintext goes
// on) into stageTar and from there into the data directory. Its checksum
// is known only at the end: on any error the caller removes what was
// staged, and nothing was stopped. A verification error wins over the
// others, which it causes.
func (c *core) verifyAndStage(ctx context.Context, it *item, dataDir string, n *counter) (baseInfo, error) {
	rc, err := it.open(ctx)
	if err != nil {
		return baseInfo{}, err
	}
	defer func() { _ = rc.Close() }()
	plainR, plainW := io.Pipe()
	tarR, tarW := io.Pipe()
	var (
		hdr            artifact.Header
		info           baseInfo
		verr, tarErr   error
		verified, done = make(chan struct{}), make(chan struct{})
	)
	go func() {
		defer close(verified)
		hdr, verr = artifact.VerifyTo(plainW, backupstore.ContextReader(ctx, rc), it.art.GetSha256(), artifact.PlainKey(it.key))
		plainW.CloseWithError(verr) // nil: EOF
	}()
	go func() {
		defer close(done)
		info, tarErr = stageTar(tarW, countingReader{r: plainR, c: n}, incomingDir)
		if tarErr == nil { // the archive's end padding, and the checksum's end
			_, tarErr = io.Copy(io.Discard, plainR)
		}
		_ = plainR.CloseWithError(errStageStopped)
		tarW.CloseWithError(tarErr)
	}()
	err = c.cfg.Docker.CopyTo(ctx, "postgres", dataDir, tarR)
	_ = tarR.CloseWithError(errCopyEnded)
	<-done
	<-verified
	switch {
	case verr != nil && !errors.Is(verr, errStageStopped):
		return info, verr
	case tarErr != nil && !errors.Is(tarErr, errCopyEnded):
		return info, tarErr // the cause; the copy's error only echoes it
	case err != nil:
		return info, err
	case hdr.Kind != artifact.KindPostgres || !strings.HasSuffix(hdr.FileName, physicalExt):
		return info, fmt.Errorf("%w: the file holds %s (%s), the catalog says a physical postgres backup", artifact.ErrCorrupted, hdr.FileName, hdr.Kind)
	}
	return info, nil
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

// helper runs script in a one-off container beside postgres with the data
// directory as $1.
func (c *core) helper(ctx context.Context, what, script, dataDir string) error {
	res, err := c.cfg.Docker.RunBeside(ctx, "postgres", "", []string{"sh", "-c", script, "sh", dataDir})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return res.Err(what)
}

// stagePhysical checks the server against a physical PostgreSQL artifact
// and stages the artifact's files in the data directory, which it returns;
// nothing is stopped, and on failure nothing is left.
func (c *core) stagePhysical(ctx context.Context, it *item, p *progress) (dataDir string, err error) {
	pg := dbsource.Postgres{Exec: c.cfg.Docker}
	if dataDir, err = pg.Show(ctx, "data_directory"); err != nil {
		return "", err
	}
	if !path.IsAbs(dataDir) || path.Clean(dataDir) != dataDir || dataDir == "/" {
		return "", fmt.Errorf("the server reports data_directory %q: want an absolute directory", dataDir)
	}
	major, err := c.postgresMajor(ctx)
	if err != nil {
		return "", err
	}
	if want := it.art.GetPostgresVersion(); want != "" && want != major {
		return "", fmt.Errorf("the backup is of PostgreSQL %s and the server runs %s: a physical backup restores onto the same major version only (restore a logical backup, or run PostgreSQL %s)", want, major, want)
	}
	if err := c.helper(ctx, "prepare the data directory", prepareScript, dataDir); err != nil {
		return "", err
	}
	var n counter
	p.step("verify and stage postgres", 10, n.load)
	info, err := c.verifyAndStage(ctx, it, dataDir, &n)
	if err == nil && info.version != major {
		err = fmt.Errorf("the backup's PG_VERSION is %q and the server runs %s: a physical backup restores onto the same major version only", info.version, major)
	}
	if err == nil {
		err = c.helper(ctx, "check the staged backup", checkScript, dataDir)
	}
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if rerr := c.helper(cctx, "remove the staged backup", `rm -rf -- "$1/`+incomingDir+`"`, dataDir); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return "", fmt.Errorf("stage the base backup in %s: %w", dataDir, err)
	}
	return dataDir, nil
}

// swapPhysical replaces the data directory's files with the staged ones,
// with the server stopped, and starts it. On any failure it puts the
// previous files back and starts the server on them.
func (c *core) swapPhysical(ctx context.Context, dataDir string, p *progress) (err error) {
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
	if err := c.startPostgres(ctx); err != nil {
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

// baseInfo is what stageTar learnt of a base backup.
type baseInfo struct {
	version string // PG_VERSION's content
	files   int
}

// maxVersionFile bounds PG_VERSION, a few bytes.
const maxVersionFile = 64

// stageTar copies the pg_basebackup tar from r to w with every entry moved
// under dir (a directory entry for dir first, owned as the first entry).
// It refuses what pg_basebackup does not write: entries other than regular
// files and directories, names that are absolute, unclean or leave the
// directory, and a tar without PG_VERSION, backup_label and
// global/pg_control.
func stageTar(w io.Writer, r io.Reader, dir string) (baseInfo, error) {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	var info baseInfo
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return info, fmt.Errorf("%w: not a base backup tar: %w", artifact.ErrCorrupted, err)
		}
		// pg_basebackup names the WAL it fetched "./pg_wal/...".
		name := strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "./")
		if err := baseEntryOK(h, name); err != nil {
			return info, fmt.Errorf("%w: %w", artifact.ErrCorrupted, err)
		}
		if info.files == 0 && dir != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o700, Uid: h.Uid, Gid: h.Gid, ModTime: h.ModTime}); err != nil {
				return info, err
			}
		}
		info.files++
		seen[name] = true
		out := *h
		out.Name = path.Join(dir, name)
		if h.Typeflag == tar.TypeDir {
			out.Name += "/"
		}
		out.PAXRecords, out.Format = nil, tar.FormatUnknown
		if err := tw.WriteHeader(&out); err != nil {
			return info, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if name == "PG_VERSION" {
			if h.Size > maxVersionFile {
				return info, fmt.Errorf("%w: PG_VERSION of %d bytes", artifact.ErrCorrupted, h.Size)
			}
			var b strings.Builder
			if _, err := io.CopyN(io.MultiWriter(tw, &b), tr, h.Size); err != nil {
				return info, err
			}
			info.version = strings.TrimSpace(b.String())
			continue
		}
		if _, err := io.CopyN(tw, tr, h.Size); err != nil {
			return info, err
		}
	}
	for _, must := range []string{"PG_VERSION", "backup_label", "global/pg_control"} {
		if !seen[must] {
			return info, fmt.Errorf("%w: not a base backup: no %s in the tar", artifact.ErrCorrupted, must)
		}
	}
	return info, tw.Close()
}

// baseEntryOK checks one entry of a base backup tar.
func baseEntryOK(h *tar.Header, name string) error {
	if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
		return fmt.Errorf("entry %q of type %q: a base backup holds only files and directories", h.Name, h.Typeflag)
	}
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") ||
		strings.ContainsRune(name, 0) || name == incomingDir || name == previousDir ||
		strings.HasPrefix(name, incomingDir+"/") || strings.HasPrefix(name, previousDir+"/") {
		return fmt.Errorf("entry %q: not a clean name inside the data directory", h.Name)
	}
	if h.Size < 0 {
		return fmt.Errorf("entry %q: negative size", h.Name)
	}
	return nil
}
