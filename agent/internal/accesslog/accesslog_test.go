package accesslog

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	ts := time.Date(2026, 12, 4, 3, 10, 0, 0, time.FixedZone("", 0))
	for _, tc := range []struct {
		name, line string
		want       Entry
	}{
		{"combined", `172.18.0.5 - - [04/Dec/2026:03:10:00 +0000] "POST /api/v1/auth/login HTTP/1.1" 401 52 "-" "curl/8.0"`,
			Entry{Remote: netip.MustParseAddr("172.18.0.5"), Time: ts, Method: "POST", Path: "/api/v1/auth/login", Status: 401}},
		{"main with forwarded-for", `10.0.0.2 - bob [04/Dec/2026:03:10:00 +0000] "GET /api/v1/health?x=1 HTTP/2.0" 200 15 "https://r/" "ua" "203.0.113.9, 10.0.0.1"`,
			Entry{Remote: netip.MustParseAddr("10.0.0.2"), Time: ts, Method: "GET", Path: "/api/v1/health", Status: 200, ForwardedFor: "203.0.113.9, 10.0.0.1"}},
		{"main without header", `10.0.0.2 - - [04/Dec/2026:03:10:00 +0000] "GET / HTTP/1.1" 301 0 "-" "-" "-"`,
			Entry{Remote: netip.MustParseAddr("10.0.0.2"), Time: ts, Method: "GET", Path: "/", Status: 301}},
		{"ipv6 and encoded path", `2001:db8::1 - - [04/Dec/2026:03:10:00 +0000] "POST /api/v1/auth/x/../%6cogin HTTP/1.1" 401 0 "-" "-"`,
			Entry{Remote: netip.MustParseAddr("2001:db8::1"), Time: ts, Method: "POST", Path: "/api/v1/auth/login", Status: 401}},
		{"garbage request", `192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "\x16\x03\x01" 400 150 "-" "-"`,
			Entry{Remote: netip.MustParseAddr("192.0.2.1"), Time: ts, Status: 400}},
		{"closed by nginx", `192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "-" 444 0 "-" "-"`,
			Entry{Remote: netip.MustParseAddr("192.0.2.1"), Time: ts, Status: 444}},
		// A user with brackets (basic auth is the client's) cannot move the
		// time: it is the last "[" before the first quote, which nginx wrote.
		{"user with brackets", `192.0.2.1 - x] [01/Jan/2000:00:00:00 +0000] [04/Dec/2026:03:10:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"`,
			Entry{Remote: netip.MustParseAddr("192.0.2.1"), Time: ts, Method: "GET", Path: "/", Status: 200}},
		{"cut in the user agent", `192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "POST /api/v1/auth/login HTTP/1.1" 401 1 "-" "aaaa`,
			Entry{Remote: netip.MustParseAddr("192.0.2.1"), Time: ts, Method: "POST", Path: "/api/v1/auth/login", Status: 401, Cut: true}},
		{"cut after the status", `192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "POST /api/v1/auth/login HTTP/1.1" 401`,
			Entry{Remote: netip.MustParseAddr("192.0.2.1"), Time: ts, Method: "POST", Path: "/api/v1/auth/login", Status: 401, Cut: true}},
		{"absolute uri", `192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "POST http://h/api/v1/auth/login HTTP/1.1" 401 1 "-" "-"`,
			Entry{Remote: netip.MustParseAddr("192.0.2.1"), Time: ts, Method: "POST", Path: "/api/v1/auth/login", Status: 401}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.line)
			require.NoError(t, err)
			assert.True(t, tc.want.Time.Equal(got.Time), got.Time)
			got.Time = tc.want.Time
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, line := range []string{
		"",
		"garbage",
		// nginx's error log, on the container's stderr.
		`2026/12/04 03:10:00 [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 172.18.0.1`,
		`not-an-ip - - [04/Dec/2026:03:10:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"`,
		`192.0.2.1 - - [yesterday] "GET / HTTP/1.1" 200 1 "-" "-"`,
		`192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "GET / HTTP/1.1" 20 1 "-" "-"`,
		`192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "GET / HTTP/1.1" 099 1 "-" "-"`,
		`192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "-" 400 1 "-"`,
		`192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "-" 400 1 "-" "-" "-" "-"`,
		`192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "-" 444 0 "-" "-" trailing`,
		`192.0.2.1 - - [04/Dec/2026:03:10:00 +0000] "GET / HTTP/1.1`,
		// The second piece of a main-format line Docker split at 16 KiB,
		// starting in the client's user agent: its only quotes are nginx's
		// around X-Forwarded-For, which the client also wrote.
		`203.0.113.5 - - [04/Dec/2026:03:10:00 +0000] " " 403 0 x"`,
		"192.0.2.1 " + strings.Repeat("x", MaxLine),
	} {
		_, err := Parse(line)
		require.Error(t, err, line)
	}
}

func TestClient(t *testing.T) {
	trusted := Proxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tc := range []struct {
		name, remote, xff string
		trusted           Proxies
		want              string
	}{
		{"no proxies configured", "10.0.0.2", "203.0.113.9", nil, "10.0.0.2"},
		{"untrusted remote: header ignored", "198.51.100.7", "203.0.113.9", trusted, "198.51.100.7"},
		{"trusted remote, no header", "10.0.0.2", "", trusted, "10.0.0.2"},
		{"one hop", "10.0.0.2", "203.0.113.9", trusted, "203.0.113.9"},
		{"rightmost untrusted wins over a forged left part", "10.0.0.2", "192.0.2.66, 203.0.113.9, 10.0.0.1", trusted, "203.0.113.9"},
		{"all trusted", "10.0.0.2", "10.0.0.3, 10.0.0.1", trusted, "10.0.0.3"},
		{"garbage hop stops at the last proxy", "10.0.0.2", "203.0.113.9, junk, 10.0.0.1", trusted, "10.0.0.1"},
		{"garbage only", "10.0.0.2", "junk", trusted, "10.0.0.2"},
		{"ipv6", "fd00::2", "2001:db8::9", trusted, "2001:db8::9"},
		{"mapped", "10.0.0.2", "::ffff:203.0.113.9", trusted, "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Entry{Remote: netip.MustParseAddr(tc.remote), ForwardedFor: tc.xff}
			assert.Equal(t, tc.want, e.Client(tc.trusted).String())
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`172.18.0.5 - - [04/Dec/2026:03:10:00 +0000] "POST /api/v1/auth/login HTTP/1.1" 401 52 "-" "curl/8.0"`,
		`10.0.0.2 - bob [04/Dec/2026:03:10:00 +0000] "GET /a?x HTTP/2.0" 200 15 "r" "ua" "203.0.113.9, 10.0.0.1"`,
		`2026/12/04 03:10:00 [error] 7#7: *1 connect() failed`,
		`::1 - - [04/Dec/2026:03:10:00 +0000] "-" 444 0 "-" "-"`,
	} {
		f.Add(s)
	}
	trusted := Proxies{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	f.Fuzz(func(t *testing.T, line string) {
		e, err := Parse(line)
		if err != nil {
			return
		}
		if !e.Remote.IsValid() || e.Status < 100 || e.Status > 999 {
			t.Fatalf("accepted %q as %+v", line, e)
		}
		if e.Cut && (e.ForwardedFor != "" || e.Method == "" || e.Path == "") {
			t.Fatalf("cut line %q accepted as %+v", line, e)
		}
		if e.Path != "" && !strings.HasPrefix(e.Path, "/") && e.Path != "." {
			t.Fatalf("path %q from %q", e.Path, line)
		}
		// The client is the remote address or, only when the line has a
		// list, a valid address of it.
		if c := e.Client(trusted); c != e.Remote && (e.ForwardedFor == "" || !c.IsValid()) {
			t.Fatalf("client %s from %q", c, line)
		}
	})
}
