package metrics

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/forlock/fleet/internal/loopback"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/forlock/fleet/controlplane/internal/secretfile"
)

// MinTokenLength is the shortest bearer token accepted in the token file.
const MinTokenLength = 16

// Config is the metrics listener.
type Config struct {
	// Listen is host:port; empty turns metrics off.
	Listen string
	// TokenFile holds the bearer token scrapes must send (mode 0600);
	// required when Listen is not loopback.
	TokenFile string
	// Pprof serves /debug/pprof/ on the same listener.
	Pprof bool
}

// Loopback reports whether addr (host:port) listens on loopback only:
// localhost or a loopback IP. An empty host or a wildcard is every
// interface.
func Loopback(addr string) bool { return loopback.Addr(addr) }

// Check validates the configuration without touching files.
func (c Config) Check() error {
	if c.Listen == "" {
		if c.TokenFile != "" || c.Pprof {
			return errors.New("metrics_token_file and metrics_pprof need metrics_listen (--metrics-listen)")
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("metrics_listen %q: want host:port, e.g. 127.0.0.1:9464", c.Listen)
	}
	if !Loopback(c.Listen) && c.TokenFile == "" {
		return fmt.Errorf("metrics_listen %s listens beyond loopback, and metrics reveal the fleet: set metrics_token_file (--metrics-token-file) "+
			"to a file holding a bearer token (mode 0600; e.g. openssl rand -hex 32 > FILE), or listen on 127.0.0.1", c.Listen)
	}
	return nil
}

// readToken reads the token file and returns the token's SHA-256: requests
// are compared against the hash, so the token itself is not kept.
func readToken(path string) ([]byte, error) {
	if err := secretfile.Check(path, "the metrics bearer token"); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path) //nolint:gosec // the operator's configured token file
	if err != nil {
		return nil, fmt.Errorf("metrics token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < MinTokenLength || strings.ContainsAny(tok, " \t\r\n") {
		return nil, fmt.Errorf("metrics token file %s: want one token of at least %d characters without spaces (e.g. openssl rand -hex 32)", path, MinTokenLength)
	}
	h := sha256.Sum256([]byte(tok))
	return h[:], nil
}

// Server is the metrics listener.
type Server struct {
	lis  net.Listener
	http *http.Server
	log  *slog.Logger
}

// Listen checks cfg, reads the token and opens the listener; nothing is
// served until Serve.
func (m *Metrics) Listen(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	var want []byte
	if cfg.TokenFile != "" {
		var err error
		if want, err = readToken(cfg.TokenFile); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics listen on %s: %w (change --metrics-listen)", cfg.Listen, err)
	}
	var h http.Handler = mux
	if want != nil {
		h = bearer(want, mux, log)
	}
	return &Server{lis: lis, log: log, http: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}}, nil
}

// bearer lets through requests whose Authorization header carries the
// token: its hash is compared in constant time. The token is never logged,
// and refusals at most once a second: a scanner must not flood the log.
func bearer(want []byte, next http.Handler, log *slog.Logger) http.Handler {
	sometimes := &rate.Sometimes{Interval: time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		h := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(h[:], want) != 1 {
			sometimes.Do(func() {
				log.Warn("metrics request refused: missing or wrong bearer token", "client", r.RemoteAddr, "path", r.URL.Path)
			})
			w.Header().Set("WWW-Authenticate", `Bearer realm="forlock-metrics"`)
			http.Error(w, "send the token of metrics_token_file: Authorization: Bearer <token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Close closes the listener of a server that never served.
func (s *Server) Close() error { return s.lis.Close() }

// Serve serves until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.http.Shutdown(sctx)
	}()
	s.log.Info("metrics serving", "addr", s.lis.Addr().String())
	if err := s.http.Serve(s.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics serve: %w", err)
	}
	return nil
}
