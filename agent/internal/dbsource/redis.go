package dbsource

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a node's Redis: commands over the network, the RDB file read
// inside its container.
type Redis struct {
	Client *redis.Client
	Exec   Execer
	// Poll is how often BGSAVE's progress is checked; default 100ms.
	Poll time.Duration
}

// Snapshot makes Redis write a fresh RDB with BGSAVE, waits until it is
// finished (LASTSAVE changed and rdb_last_bgsave_status:ok), then streams
// the file into w. An AOF rewrite in progress is waited out with BGSAVE
// SCHEDULE.
func (r Redis) Snapshot(ctx context.Context, w io.Writer) error {
	before, err := r.Client.LastSave(ctx).Result()
	if err != nil {
		return fmt.Errorf("redis LASTSAVE: %w", err)
	}
	// LASTSAVE has one-second resolution: start the save in a later second
	// than the last one, so its change can be seen.
	if now, err := r.Client.Time(ctx).Result(); err == nil && now.Unix() <= before {
		select {
		case <-time.After(time.Until(now.Truncate(time.Second).Add(time.Second)) + 10*time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := r.Client.Do(ctx, "BGSAVE", "SCHEDULE").Err(); err != nil {
		return fmt.Errorf("redis BGSAVE: %w", err)
	}
	poll := r.Poll
	if poll == 0 {
		poll = 100 * time.Millisecond
	}
	for {
		info, err := r.Client.Info(ctx, "persistence").Result()
		if err != nil {
			return fmt.Errorf("redis INFO persistence: %w", err)
		}
		now, err := r.Client.LastSave(ctx).Result()
		if err != nil {
			return fmt.Errorf("redis LASTSAVE: %w", err)
		}
		inProgress := field(info, "rdb_bgsave_in_progress") == "1"
		if !inProgress && now > before {
			if st := field(info, "rdb_last_bgsave_status"); st != "ok" {
				return fmt.Errorf("redis BGSAVE failed (rdb_last_bgsave_status:%s): see the Redis log", st)
			}
			break
		}
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	dir, err := r.Client.ConfigGet(ctx, "dir").Result()
	if err != nil {
		return fmt.Errorf("redis CONFIG GET dir: %w", err)
	}
	file, err := r.Client.ConfigGet(ctx, "dbfilename").Result()
	if err != nil {
		return fmt.Errorf("redis CONFIG GET dbfilename: %w", err)
	}
	rdb := path.Join(dir["dir"], file["dbfilename"])
	res, err := r.Exec.Exec(ctx, "redis", "", []string{"cat", rdb}, nil, w)
	if err != nil {
		return fmt.Errorf("copy %s: %w", rdb, err)
	}
	return res.Err("copy " + rdb)
}

// field returns the value of key in an INFO section.
func field(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v
		}
	}
	return ""
}
