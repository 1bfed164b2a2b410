// Package accesslog reads nginx access-log lines in the documented
// `combined` format and in `main` (combined plus "$http_x_forwarded_for"),
// and says which client a line is about.
//
// The lines are untrusted input: a client chooses the request line, the
// referer, the user agent, X-Forwarded-For and (with basic auth) the user.
// What keeps the parse honest is that nginx escapes '"', '\' and control
// bytes in every variable it logs (as \xXX), so a quote in a line is always
// one nginx wrote. The parser leans on that: the first quote opens the
// request, the time is the last "[...]" before it, and the client address is
// the first field, which nginx fills from the connection (or the realip
// module), never from a header. Lines that do not fit (error-log lines, a
// custom format, garbage) are refused with an error, never guessed at.
package accesslog

import (
	"errors"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// MaxLine bounds the lines Parse reads; longer ones are refused (the follower
// cuts lines well before this).
const MaxLine = 16 << 10

// timeLayout is nginx's $time_local.
const timeLayout = "02/Jan/2006:15:04:05 -0700"

// Entry is one request as nginx logged it.
type Entry struct {
	// Remote is $remote_addr, the address nginx saw.
	Remote netip.Addr
	// Time is $time_local.
	Time time.Time
	// Method is the request's method, "" if the request line was not one
	// (nginx logs what a client sent, even "-" or garbage, with a 400).
	Method string
	// Path is the request's path, percent-decoded and cleaned ("/a/../b" is
	// "/b"), without the query; "" if there is none.
	Path string
	// Status is the status nginx answered, 100 to 999 (444 is nginx's "closed
	// without answer").
	Status int
	// ForwardedFor is $http_x_forwarded_for when the line has it (the `main`
	// format), else "" (also when nginx logged "-").
	ForwardedFor string
	// Cut says the line's tail (referer, user agent, X-Forwarded-For) was
	// missing or unreadable: a line cut for length. ForwardedFor is then "".
	Cut bool
}

// Errors of Parse; a caller counts them, it does not log the line.
var (
	ErrTooLong = errors.New("access log line too long")
	ErrFormat  = errors.New("not an nginx combined or main access log line")
)

// Parse reads one access-log line.
func Parse(line string) (Entry, error) {
	var e Entry
	if len(line) > MaxLine {
		return e, ErrTooLong
	}
	addr, rest, ok := strings.Cut(line, " ")
	if !ok {
		return e, ErrFormat
	}
	var err error
	if e.Remote, err = netip.ParseAddr(addr); err != nil {
		return e, ErrFormat
	}
	e.Remote = e.Remote.Unmap()

	// "- $remote_user [$time_local] " up to the request's opening quote.
	q := strings.IndexByte(rest, '"')
	if q < 0 {
		return e, ErrFormat
	}
	head, rest := rest[:q], rest[q+1:]
	open := strings.LastIndexByte(head, '[')
	if open < 0 || !strings.HasSuffix(head, "] ") || !strings.HasPrefix(head, "- ") {
		return e, ErrFormat
	}
	if e.Time, err = time.Parse(timeLayout, head[open+1:len(head)-2]); err != nil {
		return e, ErrFormat
	}

	req, rest, ok := strings.Cut(rest, `" `)
	if !ok {
		return e, ErrFormat
	}
	e.Method, e.Path = request(req)

	// $status $body_bytes_sent "$http_referer" "$http_user_agent" ["$http_x_forwarded_for"]
	st, rest, _ := strings.Cut(rest, " ")
	if len(st) != 3 {
		return e, ErrFormat
	}
	if e.Status, err = strconv.Atoi(st); err != nil || e.Status < 100 {
		return e, ErrFormat
	}
	_, rest, ok = strings.Cut(rest, " ") // bytes
	fields, fok := quoted(rest)
	switch {
	case !ok || !fok || len(fields) < 2 || len(fields) > 3:
		// A line cut for length (by the reader, or by Docker at 16 KiB) still
		// has its head, and a client with a long user agent must not slip
		// through. Only a real request line is taken so: a piece of a split
		// line that starts in client text has no request between two of
		// nginx's quotes, so it cannot pass for a line of its own.
		if e.Method == "" || e.Path == "" {
			return e, ErrFormat
		}
		e.Cut = true
	case len(fields) == 3 && fields[2] != "-":
		e.ForwardedFor = fields[2]
	}
	return e, nil
}

// request splits a request line "METHOD URI PROTO" into its method and
// cleaned path; a line that is not one gives "", "".
func request(line string) (method, p string) {
	parts := strings.Split(line, " ")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return "", ""
	}
	uri, _, _ := strings.Cut(parts[1], "?")
	if !strings.HasPrefix(uri, "/") {
		// An absolute URI (GET http://host/path HTTP/1.1) names a path too.
		u, err := url.Parse(uri)
		if err != nil || u.Scheme == "" || !strings.HasPrefix(u.Path, "/") {
			return parts[0], ""
		}
		uri = u.EscapedPath()
	}
	// Decoded as the API's router decodes it, so /api/v1/auth/%6cogin is
	// the login path too.
	if dec, err := url.PathUnescape(uri); err == nil && strings.HasPrefix(dec, "/") {
		uri = dec
	}
	return parts[0], path.Clean(uri)
}

// quoted reads `"a" "b" ...` to the end of s.
func quoted(s string) ([]string, bool) {
	var out []string
	for s != "" {
		if s[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return nil, false
		}
		out = append(out, s[1:1+end])
		s = s[end+2:]
		if s == "" {
			break
		}
		if s[0] != ' ' || len(out) == 3 {
			return nil, false
		}
		s = s[1:]
	}
	return out, true
}
