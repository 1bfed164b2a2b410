package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/backupstore"
)

// Staging is step 1 of a physical restore (restore_physical.go): the base
// backup is verified and copied beside the live data while PostgreSQL
// runs, so nothing is stopped yet; on any failure what was staged is
// removed, and a staged backup that is never swapped in is removed when
// the task ends (unstage).

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

// unstage removes a staged physical backup that was never swapped in (the
// API could not be stopped, or the task ended before).
func (c *core) unstage(ctx context.Context, it *item) {
	if it.swapped {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := c.helper(ctx, "remove the staged backup", `rm -rf -- "$1/`+incomingDir+`"`, it.dataDir); err != nil {
		c.cfg.Logger.Warn("restore: the staged backup is left; remove it by hand", "path", it.dataDir+"/"+incomingDir, "error", err.Error())
	}
}
