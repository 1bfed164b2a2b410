package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/forlock/fleet/internal/artifact"
)

// redisTarget is where Redis keeps its RDB file, and the file's owner and
// mode, read before anything is stopped.
type redisTarget struct {
	dir, file string
	uid, gid  int
	mode      int64
}

func (t redisTarget) path() string { return path.Join(t.dir, t.file) }

// redisTarget asks Redis where its RDB file is and refuses when it would
// not load it at start (append-only file on).
func (c *core) redisTarget(ctx context.Context) (redisTarget, error) {
	client, err := c.redisClient()
	if err != nil {
		return redisTarget{}, err
	}
	defer func() { _ = client.Close() }()
	get := func(key string) (string, error) {
		m, err := client.ConfigGet(ctx, key).Result()
		if err != nil {
			return "", fmt.Errorf("redis CONFIG GET %s: %w", key, err)
		}
		return m[key], nil
	}
	aof, err := get("appendonly")
	if err != nil {
		return redisTarget{}, err
	}
	if aof == "yes" {
		return redisTarget{}, errors.New("redis has appendonly yes: at start it loads the append-only file, not dump.rdb, so restoring dump.rdb would change nothing; " +
			"turn the AOF off (appendonly no in redis.conf) to restore from this backup, or restore Redis by hand")
	}
	t := redisTarget{mode: 0o600}
	if t.dir, err = get("dir"); err != nil {
		return redisTarget{}, err
	}
	if t.file, err = get("dbfilename"); err != nil {
		return redisTarget{}, err
	}
	if !path.IsAbs(t.dir) || path.Clean(t.dir) != t.dir || t.file == "" || strings.ContainsAny(t.file, "/\x00") || t.file == "." || t.file == ".." {
		return redisTarget{}, fmt.Errorf("redis reports dir %q and dbfilename %q: want an absolute directory and a file name", t.dir, t.file)
	}
	// The file keeps its owner, so Redis can still read and replace it.
	for _, p := range []string{t.path(), t.dir} {
		var out bytes.Buffer
		res, err := c.cfg.Docker.Exec(ctx, "redis", "root", []string{"stat", "-c", "%u %g %a", p}, nil, &out)
		if err != nil || res.ExitCode != 0 {
			continue
		}
		f := strings.Fields(out.String())
		if len(f) != 3 {
			continue
		}
		uid, err1 := strconv.Atoi(f[0])
		gid, err2 := strconv.Atoi(f[1])
		mode, err3 := strconv.ParseInt(f[2], 8, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		t.uid, t.gid = uid, gid
		if p == t.path() {
			t.mode = mode
		}
		return t, nil
	}
	return redisTarget{}, fmt.Errorf("cannot read the owner of %s or %s in the redis container", t.path(), t.dir)
}

// restoreRedis stops the redis container (Redis saves on shutdown; the file
// is replaced after), copies the RDB file over the old one, and starts it
// again whatever happened.
func (c *core) restoreRedis(ctx context.Context, it *item, t redisTarget, p *progress) (err error) {
	d := c.cfg.Docker
	p.step("stop redis", 75, nil)
	if err := d.Stop(ctx, "redis", c.cfg.StopTimeout); err != nil {
		return errors.Join(fmt.Errorf("stop the redis container: %w", err), c.startRedis(ctx))
	}
	defer func() {
		if serr := c.startRedis(ctx); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	var n counter
	p.step("restore redis", 80, n.load)
	body, err := it.openPlain(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = body.Close() }()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeRDBTar(pw, countingReader{r: body, c: &n}, it.plain, t))
	}()
	err = d.CopyTo(ctx, "redis", t.dir, pr)
	_ = pr.CloseWithError(errors.New("copy ended"))
	if err != nil {
		return fmt.Errorf("replace %s: %w", t.path(), err)
	}
	return nil
}

// writeRDBTar writes a tar of one file, t.file, holding exactly size bytes
// of body.
func writeRDBTar(w io.Writer, body io.Reader, size int64, t redisTarget) error {
	tw := tar.NewWriter(w)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: t.file, Size: size, Mode: t.mode, Uid: t.uid, Gid: t.gid, ModTime: time.Now()}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, body, size); err != nil {
		return fmt.Errorf("RDB shorter than when verified: %w", err)
	}
	if n, _ := io.Copy(io.Discard, body); n > 0 {
		return fmt.Errorf("%w: RDB longer than when verified", artifact.ErrCorrupted)
	}
	return tw.Close()
}

// startRedis starts the redis container and waits until it answers.
func (c *core) startRedis(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.HealthTimeout+time.Minute)
	defer cancel()
	if err := c.cfg.Docker.Start(ctx, "redis"); err != nil {
		return fmt.Errorf("start the redis container again: %w: start it by hand", err)
	}
	if err := c.waitHealthy(ctx, "redis"); err != nil {
		return fmt.Errorf("redis did not come back: %w", err)
	}
	return nil
}
