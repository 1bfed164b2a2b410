package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Backend is what the HTTP handlers need from PostgreSQL and Redis.
type Backend interface {
	PingDB(ctx context.Context) error
	PingRedis(ctx context.Context) error
	EnsureSchema(ctx context.Context) error
	CreateItem(ctx context.Context, it Item) (ItemRecord, error)
	GetItem(ctx context.Context, id int64) (ItemRecord, error)
	ListItems(ctx context.Context, owner string, limit int) ([]ItemRecord, error)
	Summary(ctx context.Context) (Summary, error)
	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, token string) (Session, error)
}

// ErrNotFound is returned by a Backend for a missing item or session.
var ErrNotFound = errors.New("not found")

// Server serves the stand-in Forlock API.
type Server struct {
	log       *slog.Logger
	be        Backend
	faultFile string
	delayFile string
	// release is reported by /api/v1/health; broken fails every health
	// endpoint with 503 (the upgrade tests' broken image).
	release string
	broken  bool

	adminFail   atomic.Bool
	adminDelay  atomic.Int64 // nanoseconds
	schemaReady atomic.Bool
	now         func() time.Time
	// users are the accounts the login endpoint knows.
	users Users
}

// NewServer returns a server over be. faultFile and delayFile are the run-time
// switches read on every /api/v1/health request ("" disables one).
func NewServer(log *slog.Logger, be Backend, faultFile, delayFile string) *Server {
	users, _ := ParseUsers(DefaultUsers) // a constant that parses
	return &Server{log: log, be: be, faultFile: faultFile, delayFile: delayFile, now: time.Now, users: users}
}

// EnsureSchemaLoop creates the schema, retrying until it succeeds or ctx ends,
// so the server answers health checks while PostgreSQL is still starting.
func (s *Server) EnsureSchemaLoop(ctx context.Context) {
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := s.be.EnsureSchema(ctx)
		if err == nil {
			s.schemaReady.Store(true)
			s.log.Info("schema ready", "table", "vault_items")
			return
		}
		s.log.Warn("schema not ready, retrying", "error", err.Error(), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Handler is the server's HTTP handler with request logging.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/health", s.health)
	mux.HandleFunc("GET /api/v1/health/db", s.healthDB)
	mux.HandleFunc("GET /api/v1/health/redis", s.healthRedis)
	mux.HandleFunc("GET /api/v1/admin/fault", s.getFault)
	mux.HandleFunc("PUT /api/v1/admin/fault", s.putFault)
	mux.HandleFunc("GET /api/v1/vault/items", s.listItems)
	mux.HandleFunc("POST /api/v1/vault/items", s.createItem)
	mux.HandleFunc("GET /api/v1/vault/items/{id}", s.getItem)
	mux.HandleFunc("GET /api/v1/vault/summary", s.summary)
	mux.HandleFunc("POST /api/v1/sessions", s.createSession)
	mux.HandleFunc("GET /api/v1/sessions/{token}", s.getSession)
	mux.HandleFunc("POST "+LoginPath, s.login)
	return s.logRequests(mux)
}

// Fault is the state of the run-time switches.
type Fault struct {
	Fail  bool   `json:"fail"`
	Delay string `json:"delay,omitempty"`
}

// fault reads the switches: the admin endpoint's or the files'.
func (s *Server) fault() (fail bool, delay time.Duration) {
	fail = s.adminFail.Load()
	delay = time.Duration(s.adminDelay.Load())
	if s.faultFile != "" {
		if _, err := os.Stat(s.faultFile); err == nil {
			fail = true
		}
	}
	if s.delayFile != "" {
		if b, err := os.ReadFile(s.delayFile); err == nil {
			if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil && d > delay {
				delay = d
			}
		}
	}
	return fail, delay
}

// errBroken is the health answer of an image built broken on purpose.
var errBroken = errors.New("broken release (FORLOCK_API_BROKEN is set)")

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if s.broken {
		writeError(w, http.StatusServiceUnavailable, errBroken)
		return
	}
	fail, delay := s.fault()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if fail {
		s.log.Error("health check failed", "reason", "fault injected")
		writeJSON(w, http.StatusInternalServerError, map[string]string{"status": "error", "error": "fault injected"})
		return
	}
	body := map[string]string{"status": "ok"}
	if s.release != "" {
		body["version"] = s.release
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) healthDB(w http.ResponseWriter, r *http.Request) {
	s.dependency(w, r, "postgres", s.be.PingDB)
}

func (s *Server) healthRedis(w http.ResponseWriter, r *http.Request) {
	s.dependency(w, r, "redis", s.be.PingRedis)
}

func (s *Server) dependency(w http.ResponseWriter, r *http.Request, name string, ping func(context.Context) error) {
	if s.broken {
		writeError(w, http.StatusServiceUnavailable, errBroken)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := ping(ctx)
	ms := float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		s.log.Error("dependency unreachable", "dependency", name, "error", err.Error())
		writeJSON(w, http.StatusInternalServerError, map[string]any{"status": "error", "error": err.Error(), "latency_ms": ms})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "latency_ms": ms})
}

func (s *Server) getFault(w http.ResponseWriter, _ *http.Request) {
	fail, delay := s.fault()
	f := Fault{Fail: fail}
	if delay > 0 {
		f.Delay = delay.String()
	}
	writeJSON(w, http.StatusOK, f)
}

// putFault sets the admin switches; the files still apply on top of them.
func (s *Server) putFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&f); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	var d time.Duration
	if f.Delay != "" {
		var err error
		if d, err = time.ParseDuration(f.Delay); err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, errors.New("delay: want a non-negative duration such as 800ms"))
			return
		}
	}
	s.adminFail.Store(f.Fail)
	s.adminDelay.Store(int64(d))
	s.log.Warn("fault switches set", "fail", f.Fail, "delay", d.String())
	s.getFault(w, r)
}

func (s *Server) listItems(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, errors.New("limit: want 1..1000"))
			return
		}
		limit = n
	}
	items, err := s.be.ListItems(r.Context(), r.URL.Query().Get("owner"), limit)
	if err != nil {
		s.internal(w, "list items", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) createItem(w http.ResponseWriter, r *http.Request) {
	var it Item
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&it); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if it.Owner == "" || it.Name == "" || len(it.Ciphertext) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("owner, name and ciphertext are required"))
		return
	}
	rec, err := s.be.CreateItem(r.Context(), it)
	if err != nil {
		s.internal(w, "create item", err)
		return
	}
	s.log.Info("vault item created", "id", rec.ID, "owner", rec.Owner, "bytes", len(rec.Ciphertext))
	writeJSON(w, http.StatusCreated, rec)
}

func (s *Server) getItem(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, errors.New("id: want an integer"))
		return
	}
	rec, err := s.be.GetItem(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		s.internal(w, "get item", err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) summary(w http.ResponseWriter, r *http.Request) {
	sum, err := s.be.Summary(r.Context())
	if err != nil {
		s.internal(w, "summary", err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User string `json:"user"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.User == "" {
		writeError(w, http.StatusBadRequest, errors.New(`want {"user": "..."}`))
		return
	}
	sess := NewSession(req.User, clientIP(r), r.UserAgent(), s.now())
	if err := s.be.CreateSession(r.Context(), sess); err != nil {
		s.internal(w, "create session", err)
		return
	}
	s.log.Info("session created", "user", sess.User)
	writeJSON(w, http.StatusCreated, sess)
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	sess, err := s.be.GetSession(r.Context(), r.PathValue("token"))
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		s.internal(w, "get session", err)
		return
	}
	writeJSON(w, http.StatusOK, sess)
}

func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.log.Error(what+" failed", "error", err.Error())
	writeError(w, http.StatusInternalServerError, err)
}

func clientIP(r *http.Request) string {
	if v := r.Header.Get("X-Real-IP"); v != "" {
		return v
	}
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return host
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"status": "error", "error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// logRequests writes one JSON line per request: INFO, WARN for 4xx, ERROR
// for 5xx.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		lvl := slog.LevelInfo
		switch {
		case rec.status >= 500:
			lvl = slog.LevelError
		case rec.status >= 400:
			lvl = slog.LevelWarn
		}
		s.log.LogAttrs(r.Context(), lvl, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Int("bytes", rec.bytes),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("remote", clientIP(r)),
		)
	})
}
