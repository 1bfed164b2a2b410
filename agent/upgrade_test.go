package agent

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServiceContainers(t *testing.T) {
	require.Equal(t, map[string]string{"api": "n1-api", "postgres": "n1-postgres", "redis": "redis", "nginx": "n1-nginx"},
		serviceContainers([]string{"n1-api", "n1-postgres", "redis", "n1-nginx"}))
	require.Empty(t, serviceContainers(nil), "the upgrader's default forlock-<service> applies")
}
