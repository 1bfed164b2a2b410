package checks

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// The connections measurement on a real PostgreSQL, read as a role that is
// not a superuser (as deploy/testnode's forlock role is not), with
// autovacuum off so that every backend connected to a database is one the
// test opened: the count is exact, and the guide's boundaries show on a
// pool of 10 (max_connections 13 less 3 reserved for superusers). One of
// the sessions belongs to another role, a superuser, as the server's
// own processes do: the count includes what the role cannot inspect.
func TestPostgresConnectionsOnRealServer(t *testing.T) {
	port := startPostgres(t, "max_connections=13", "superuser_reserved_connections=3", "autovacuum=off")
	dsn := func(user string) string {
		return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", user, testPassword, port)
	}
	su, err := pgx.Connect(t.Context(), dsn("forlock"))
	require.NoError(t, err)
	_, err = su.Exec(t.Context(), "CREATE ROLE app LOGIN PASSWORD '"+testPassword+"'")
	require.NoError(t, err)
	var super bool
	require.NoError(t, su.QueryRow(t.Context(), "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'").Scan(&super))
	require.False(t, super)

	// The superuser's session stays open: another role's session, which the
	// count must see too.
	held := []*pgx.Conn{su}
	t.Cleanup(func() {
		for _, c := range held {
			_ = c.Close(t.Context())
		}
	})
	// A closed connection's backend exits a moment after the client has
	// gone: until then it holds its slot and is counted, so connecting and
	// counting are retried for a little while.
	hold := func(n int) {
		for range n {
			var c *pgx.Conn
			require.Eventually(t, func() bool {
				var err error
				c, err = pgx.Connect(t.Context(), dsn("app"))
				return err == nil
			}, 5*time.Second, 20*time.Millisecond)
			held = append(held, c)
		}
	}
	check := Postgres{DSN: Secret{Value: dsn("app")}}
	tests := []struct {
		held    int // connections open besides the check's own
		want    Status
		summary string
	}{
		{1, OK, "2 of 10 connections in use (20%; max_connections 13 less 3 reserved)"},
		{7, OK, "8 of 10 connections in use (80%; max_connections 13 less 3 reserved)"},
		{8, Warn, "9 of 10 connections in use (90%; max_connections 13 less 3 reserved)"},
		{9, Critical, "10 of 10 connections in use (100%; max_connections 13 less 3 reserved)"},
	}
	for _, tt := range tests {
		hold(tt.held - len(held))
		var r Result
		require.Eventually(t, func() bool {
			r = run(t, check)
			return len(r.Measurements) == 2 && r.Measurements[0].Value == float64(tt.held+1)
		}, 5*time.Second, 20*time.Millisecond, "%d held: %s", tt.held, r.String())
		require.Equal(t, tt.want, r.Status, r.String())
		require.Contains(t, r.Summary, "; "+tt.summary)
		require.Equal(t, []Measurement{{Name: "connections", Value: float64(tt.held + 1)}, {Name: "max_connections", Value: 10}}, r.Measurements)
	}

	hold(1)
	r := run(t, check)
	require.Equal(t, Critical, r.Status, r.String())
	require.Contains(t, r.Summary, "cannot connect: ")
	require.Contains(t, r.Summary, "remaining connection slots are reserved", "the pool is what an ordinary role gets")
	require.Empty(t, r.Measurements)
}
