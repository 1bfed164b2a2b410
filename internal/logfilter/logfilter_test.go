package logfilter

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIsError(t *testing.T) {
	for line, want := range map[string]bool{
		`{"level":"error","msg":"db down"}`:                                              true,
		`{"level":"ERROR","msg":"x"}`:                                                    true,
		`{"level":"fatal","msg":"x"}`:                                                    true,
		`{"severity":"critical","msg":"x"}`:                                              true,
		`{"level":"info","msg":"request failed with ERROR text in message"}`:             false,
		`{"level":"warn","msg":"x"}`:                                                     false,
		`2026-11-25 10:00:00.000 UTC [42] ERROR:  relation "x" does not exist`:           true,
		`2026-11-25 10:00:00.000 UTC [42] FATAL:  password authentication failed`:        true,
		`2026-11-25 10:00:00.000 UTC [42] LOG:  checkpoint starting: time`:               false,
		`2026/11/25 10:00:00 [error] 7#7: *1 connect() failed (111: Connection refused)`: true,
		`2026/11/25 10:00:00 [crit] 7#7: SSL_do_handshake() failed`:                      true,
		`2026/11/25 10:00:00 [warn] 7#7: conflicting server name`:                        false,
		`1:M 25 Nov 2026 10:00:00.000 # WARNING overcommit_memory is set to 0`:           false,
		`panic: runtime error: index out of range`:                                       false,
		`PANIC: unrecoverable`:                                                           true,
		`level=ERROR msg="boom"`:                                                         true,
		`127.0.0.1 - - "GET /api/v1/health HTTP/1.1" 200 15`:                             false,
		`0 errors, all good`:                                                             false,
		`TERRORIST is not a word we match`:                                               false,
		``:                                                                               false,
		`{not json ERROR`:                                                                true,
	} {
		require.Equal(t, want, IsError(line), "%q", line)
	}
}

func FuzzIsError(f *testing.F) {
	f.Add(`{"level":"error"}`)
	f.Add(`[error] x`)
	f.Add("ERROR:  y")
	f.Fuzz(func(t *testing.T, line string) {
		got := IsError(line)
		// Adding an nginx error marker always makes a non-JSON line an error.
		if !got && len(line) > 0 && line[0] != '{' && line[0] != ' ' {
			if !IsError(line + " [error]") {
				t.Fatalf("marker ignored in %q", line)
			}
		}
	})
}
