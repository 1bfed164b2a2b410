package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeBackend stands in for PostgreSQL and Redis, which are not ours to run
// in a unit test (the test node runs the real ones).
type fakeBackend struct {
	mu       sync.Mutex
	dbErr    error
	redisErr error
	items    []ItemRecord
	sessions map[string]Session
}

func (f *fakeBackend) PingDB(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dbErr
}

func (f *fakeBackend) PingRedis(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.redisErr
}
func (f *fakeBackend) EnsureSchema(context.Context) error { return f.PingDB(context.Background()) }

func (f *fakeBackend) CreateItem(_ context.Context, it Item) (ItemRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := ItemRecord{ID: int64(len(f.items) + 1), Owner: it.Owner, Name: it.Name, Ciphertext: it.Ciphertext, CreatedAt: time.Unix(1, 0), UpdatedAt: time.Unix(1, 0)}
	f.items = append(f.items, r)
	return r, nil
}

func (f *fakeBackend) GetItem(_ context.Context, id int64) (ItemRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id < 1 || id > int64(len(f.items)) {
		return ItemRecord{}, ErrNotFound
	}
	return f.items[id-1], nil
}

func (f *fakeBackend) ListItems(_ context.Context, owner string, limit int) ([]ItemRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ItemRecord
	for _, it := range f.items {
		if (owner == "" || it.Owner == owner) && len(out) < limit {
			out = append(out, it)
		}
	}
	return out, nil
}

func (f *fakeBackend) Summary(context.Context) (Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Summary{Items: int64(len(f.items)), Sessions: int64(len(f.sessions))}, nil
}

func (f *fakeBackend) CreateSession(_ context.Context, s Session) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sessions == nil {
		f.sessions = map[string]Session{}
	}
	f.sessions[s.Token] = s
	return f.redisErr
}

func (f *fakeBackend) GetSession(_ context.Context, tok string) (Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[tok]
	if !ok {
		return s, ErrNotFound
	}
	return s, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	be        *fakeBackend
	srv       *Server
	ts        *httptest.Server
	logs      *syncBuffer
	faultFile string
	delayFile string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, func(*Server) {})
}

// newFixtureWith lets set change the server before it serves.
func newFixtureWith(t *testing.T, set func(*Server)) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{be: &fakeBackend{}, logs: &syncBuffer{}, faultFile: filepath.Join(dir, "fail"), delayFile: filepath.Join(dir, "delay")}
	f.srv = NewServer(newLogger(f.logs, slog.LevelInfo), f.be, f.faultFile, f.delayFile)
	set(f.srv)
	f.ts = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.ts.Close)
	return f
}

func (f *fixture) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.ts.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := f.ts.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var m map[string]any
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	return resp.StatusCode, m
}

func TestHealthOKAndFaultFile(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, http.MethodGet, "/api/v1/health", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body["status"])

	require.NoError(t, os.WriteFile(f.faultFile, nil, 0o600))
	code, body = f.do(t, http.MethodGet, "/api/v1/health", "")
	assert.Equal(t, http.StatusInternalServerError, code)
	assert.Equal(t, "error", body["status"])

	require.NoError(t, os.Remove(f.faultFile))
	code, _ = f.do(t, http.MethodGet, "/api/v1/health", "")
	assert.Equal(t, http.StatusOK, code)
}

func TestHealthAdminFaultAndDelay(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, http.MethodPut, "/api/v1/admin/fault", `{"fail":true,"delay":"50ms"}`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, true, body["fail"])
	assert.Equal(t, "50ms", body["delay"])

	start := time.Now()
	code, _ = f.do(t, http.MethodGet, "/api/v1/health", "")
	assert.Equal(t, http.StatusInternalServerError, code)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)

	code, _ = f.do(t, http.MethodPut, "/api/v1/admin/fault", `{"fail":false}`)
	require.Equal(t, http.StatusOK, code)
	code, _ = f.do(t, http.MethodGet, "/api/v1/health", "")
	assert.Equal(t, http.StatusOK, code)

	code, _ = f.do(t, http.MethodPut, "/api/v1/admin/fault", `{"delay":"soon"}`)
	assert.Equal(t, http.StatusBadRequest, code)
}

func TestHealthDelayFile(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, os.WriteFile(f.delayFile, []byte("60ms\n"), 0o600))
	start := time.Now()
	code, _ := f.do(t, http.MethodGet, "/api/v1/health", "")
	assert.Equal(t, http.StatusOK, code)
	assert.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond)
	_, body := f.do(t, http.MethodGet, "/api/v1/admin/fault", "")
	assert.Equal(t, "60ms", body["delay"])
}

func TestDependencyHealth(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, http.MethodGet, "/api/v1/health/db", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body["status"])
	assert.Contains(t, body, "latency_ms")

	f.be.mu.Lock()
	f.be.redisErr = errors.New("dial tcp redis:6379: connection refused")
	f.be.mu.Unlock()
	code, body = f.do(t, http.MethodGet, "/api/v1/health/redis", "")
	assert.Equal(t, http.StatusInternalServerError, code)
	assert.Contains(t, body["error"], "connection refused")
	code, _ = f.do(t, http.MethodGet, "/api/v1/health/db", "")
	assert.Equal(t, http.StatusOK, code, "one dependency down leaves the other's check alone")
	// The API's own health does not depend on Redis.
	code, _ = f.do(t, http.MethodGet, "/api/v1/health", "")
	assert.Equal(t, http.StatusOK, code)
}

func TestItemsAndSessions(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, http.MethodPost, "/api/v1/vault/items", `{"owner":"alice@example.com","name":"GitHub","ciphertext":"AAECAw=="}`)
	require.Equal(t, http.StatusCreated, code)
	assert.InDelta(t, 1, body["id"], 0)

	code, body = f.do(t, http.MethodGet, "/api/v1/vault/items/1", "")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "AAECAw==", body["ciphertext"])

	code, _ = f.do(t, http.MethodGet, "/api/v1/vault/items/2", "")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = f.do(t, http.MethodGet, "/api/v1/vault/items/x", "")
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = f.do(t, http.MethodPost, "/api/v1/vault/items", `{"owner":"a"}`)
	assert.Equal(t, http.StatusBadRequest, code)

	code, body = f.do(t, http.MethodGet, "/api/v1/vault/items?owner=alice@example.com", "")
	require.Equal(t, http.StatusOK, code)
	assert.Len(t, body["items"], 1)

	code, body = f.do(t, http.MethodPost, "/api/v1/sessions", `{"user":"alice@example.com"}`)
	require.Equal(t, http.StatusCreated, code)
	tok, ok := body["token"].(string)
	require.True(t, ok)
	assert.Len(t, tok, 48)
	code, body = f.do(t, http.MethodGet, "/api/v1/sessions/"+tok, "")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "alice@example.com", body["user"])

	code, body = f.do(t, http.MethodGet, "/api/v1/vault/summary", "")
	require.Equal(t, http.StatusOK, code)
	assert.InDelta(t, 1, body["items"], 0)
	assert.InDelta(t, 1, body["sessions"], 0)
}

// Every request writes one JSON line with a level field: INFO normally,
// ERROR for a 5xx, which is what the fleet's --errors filter reads.
func TestRequestLogs(t *testing.T) {
	f := newFixture(t)
	f.do(t, http.MethodGet, "/api/v1/health", "")
	require.NoError(t, os.WriteFile(f.faultFile, nil, 0o600))
	f.do(t, http.MethodGet, "/api/v1/health", "")

	var reqs []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(f.logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		require.Contains(t, m, "level")
		if m["msg"] == "request" {
			reqs = append(reqs, m)
		}
	}
	require.Len(t, reqs, 2)
	assert.Equal(t, "INFO", reqs[0]["level"])
	assert.Equal(t, "/api/v1/health", reqs[0]["path"])
	assert.InDelta(t, 200, reqs[0]["status"], 0)
	assert.Equal(t, "ERROR", reqs[1]["level"])
	assert.InDelta(t, 500, reqs[1]["status"], 0)
}

func TestEnsureSchemaLoopRetries(t *testing.T) {
	f := newFixture(t)
	f.be.mu.Lock()
	f.be.dbErr = errors.New("the database system is starting up")
	f.be.mu.Unlock()
	done := make(chan struct{})
	go func() { f.srv.EnsureSchemaLoop(t.Context()); close(done) }()
	time.Sleep(300 * time.Millisecond)
	assert.False(t, f.srv.schemaReady.Load())
	f.be.mu.Lock()
	f.be.dbErr = nil
	f.be.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("schema loop did not finish")
	}
	assert.True(t, f.srv.schemaReady.Load())
	assert.Contains(t, f.logs.String(), `"schema ready"`)
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"LISTEN_ADDR": ":9090", "REDIS_ADDR": "r:1", "LOG_LEVEL": "debug"}
	cfg := configFromEnv(func(k string) string { return env[k] })
	assert.Equal(t, ":9090", cfg.ListenAddr)
	assert.Equal(t, "r:1", cfg.RedisAddr)
	assert.Equal(t, slog.LevelDebug, cfg.LogLevel)
	assert.Equal(t, "/tmp/forlock-fail", cfg.FaultFile)
	assert.Contains(t, cfg.DatabaseURL, "@postgres:5432/forlock")
}

func TestRunUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"frobnicate"}, &out, &errb)
	require.Error(t, err)
	require.NoError(t, run(t.Context(), []string{"version"}, &out, &errb))
	assert.Equal(t, "dev\n", out.String())
}

func TestHealthcheckCommand(t *testing.T) {
	f := newFixture(t)
	addr := strings.TrimPrefix(f.ts.URL, "http://")
	require.NoError(t, healthcheck(t.Context(), addr))
	require.NoError(t, os.WriteFile(f.faultFile, nil, 0o600))
	require.Error(t, healthcheck(t.Context(), addr))
}

func TestHealthReleaseAndBroken(t *testing.T) {
	env := map[string]string{"FORLOCK_API_VERSION": "v2", "FORLOCK_API_BROKEN": "1"}
	cfg := configFromEnv(func(k string) string { return env[k] })
	assert.Equal(t, "v2", cfg.Release)
	assert.True(t, cfg.Broken)
	for _, off := range []string{"", "0", "false"} {
		env["FORLOCK_API_BROKEN"] = off
		assert.False(t, configFromEnv(func(k string) string { return env[k] }).Broken, "FORLOCK_API_BROKEN=%q", off)
	}

	// The switches are set before the server serves, as serve does.
	f := newFixtureWith(t, func(s *Server) { s.release = "v2" })
	code, body := f.do(t, http.MethodGet, "/api/v1/health", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "v2", body["version"])

	f = newFixtureWith(t, func(s *Server) { s.release, s.broken = "v3", true })
	for _, path := range []string{"/api/v1/health", "/api/v1/health/db", "/api/v1/health/redis"} {
		code, body = f.do(t, http.MethodGet, path, "")
		assert.Equal(t, http.StatusServiceUnavailable, code, path)
		assert.Contains(t, body["error"], "FORLOCK_API_BROKEN", path)
	}
	addr := strings.TrimPrefix(f.ts.URL, "http://")
	require.ErrorContains(t, healthcheck(t.Context(), addr), "503")
}
