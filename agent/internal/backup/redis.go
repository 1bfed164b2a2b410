package backup

import (
	"errors"

	"github.com/redis/go-redis/v9"
)

// redisClient connects to the node's Redis with the agent's settings.
func (c *core) redisClient() (*redis.Client, error) {
	if c.cfg.RedisAddr == "" {
		return nil, errors.New("the agent has no Redis address: set redis_addr (or --redis-addr)")
	}
	var pw string
	if c.cfg.RedisPassword != nil {
		var err error
		if pw, err = c.cfg.RedisPassword(); err != nil {
			return nil, err
		}
	}
	return redis.NewClient(&redis.Options{Addr: c.cfg.RedisAddr, Password: pw, DisableIdentity: true}), nil
}
