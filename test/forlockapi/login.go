package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// LoginPath is the stand-in's login endpoint. The agent's logins check
// counts the 401 answers nginx logs for it (agent setting login_paths).
const LoginPath = "/api/v1/auth/login"

// DefaultUsers is the test node's one account, so tests can log in without
// configuring anything: email "admin@forlock.test", password
// "forlock-test-login".
const DefaultUsers = "admin@forlock.test:forlock-test-login"

// Users are accounts by e-mail address, each with the SHA-256 of its
// password (a stand-in: the real API uses a slow password hash).
type Users map[string][32]byte

// ParseUsers reads FORLOCK_API_USERS: "email:password" pairs separated by
// commas.
func ParseUsers(s string) (Users, error) {
	u := Users{}
	for pair := range strings.SplitSeq(s, ",") {
		email, pw, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok || email == "" || pw == "" {
			return nil, errors.New(`FORLOCK_API_USERS: want "email:password" pairs separated by commas`)
		}
		u[strings.ToLower(email)] = sha256.Sum256([]byte(pw))
	}
	return u, nil
}

// check reports whether password is the account's. An unknown address costs
// the same comparison as a known one, so timing does not tell them apart.
func (u Users) check(email, password string) bool {
	want, known := u[strings.ToLower(email)]
	got := sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1 && known
}

// errBadLogin is the one answer to a wrong password and to an unknown
// address: the API does not say which.
var errBadLogin = errors.New("wrong email or password")

// login answers 200 with a new session for the right password, 401 for a
// wrong one or an unknown address, 400 for a malformed body.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12)).Decode(&req); err != nil || req.Email == "" {
		writeError(w, http.StatusBadRequest, errors.New(`want {"email": "...", "password": "..."}`))
		return
	}
	if !s.users.check(req.Email, req.Password) {
		// The request log line (WARN, status 401, remote) is the failed
		// login's record; the address tried is not logged.
		writeError(w, http.StatusUnauthorized, errBadLogin)
		return
	}
	sess := NewSession(strings.ToLower(req.Email), clientIP(r), r.UserAgent(), s.now())
	if err := s.be.CreateSession(r.Context(), sess); err != nil {
		s.internal(w, "create session", fmt.Errorf("login: %w", err))
		return
	}
	s.log.Info("login", "user", sess.User)
	writeJSON(w, http.StatusOK, sess)
}
