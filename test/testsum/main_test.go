package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// stream is `go test -json` for a package without tests, one that passed,
// one with a skipped test and one with a failed subtest (as Go 1.26 writes it).
const stream = `{"Action":"start","Package":"m/notests"}
{"Action":"output","Package":"m/notests","Output":"?   \tm/notests\t[no test files]\n"}
{"Action":"skip","Package":"m/notests","Elapsed":0}
{"Action":"start","Package":"m/ok"}
{"Action":"run","Package":"m/ok","Test":"TestOK"}
{"Action":"pass","Package":"m/ok","Test":"TestOK","Elapsed":0}
{"Action":"pass","Package":"m/ok","Elapsed":0.01}
`

const skipped = `{"Action":"run","Package":"m/skip","Test":"TestNeedsServer"}
{"Action":"output","Package":"m/skip","Test":"TestNeedsServer","Output":"=== RUN   TestNeedsServer\n"}
{"Action":"output","Package":"m/skip","Test":"TestNeedsServer","Output":"    skip_test.go:3: the S3 test server is not built\n"}
{"Action":"output","Package":"m/skip","Test":"TestNeedsServer","Output":"--- SKIP: TestNeedsServer (0.00s)\n"}
{"Action":"skip","Package":"m/skip","Test":"TestNeedsServer","Elapsed":0}
{"Action":"pass","Package":"m/skip","Elapsed":0.01}
`

const failed = `{"Action":"run","Package":"m/fail","Test":"TestBroken/sub"}
{"Action":"output","Package":"m/fail","Test":"TestBroken/sub","Output":"    fail_test.go:3: want 1, got 2\n"}
{"Action":"fail","Package":"m/fail","Test":"TestBroken/sub","Elapsed":0}
{"Action":"fail","Package":"m/fail","Test":"TestBroken","Elapsed":0}
{"Action":"output","Package":"m/fail","Output":"FAIL\n"}
{"Action":"fail","Package":"m/fail","Elapsed":0.01}
`

func run(t *testing.T, in string) (bool, string, string) {
	t.Helper()
	var raw, out bytes.Buffer
	s, err := read(strings.NewReader(in), &raw, &out)
	require.NoError(t, err)
	ok := s.report(&out, "test.json")
	return ok, out.String(), raw.String()
}

func TestPassingRun(t *testing.T) {
	ok, out, raw := run(t, stream)
	require.True(t, ok, out)
	require.Equal(t, strings.Split(stream, "\n"), strings.Split(raw, "\n"), "the whole stream is kept, line by line")
	require.Contains(t, out, "ok  \tm/ok\t0.010s\n")
	require.Contains(t, out, "PASS: 2 packages, failed tests: 0, skipped tests: 0 (full JSON: test.json)")
	require.NotContains(t, out, "SKIP", "a package without test files is no skip")
}

func TestASkippedTestFailsTheRun(t *testing.T) {
	ok, out, _ := run(t, stream+skipped)
	require.False(t, ok, out)
	require.Contains(t, out, "  SKIP m/skip TestNeedsServer: skip_test.go:3: the S3 test server is not built\n")
	require.Contains(t, out, "FAIL: 3 packages, failed tests: 0, skipped tests: 1")
}

func TestAFailedTestShowsItsOutput(t *testing.T) {
	ok, out, _ := run(t, stream+failed)
	require.False(t, ok, out)
	require.Contains(t, out, "FAIL\tm/fail\t0.010s\n")
	require.Contains(t, out, "=== FAIL m/fail TestBroken/sub\n    fail_test.go:3: want 1, got 2\n")
	require.NotContains(t, out, "(outside any test)", "the package's own FAIL line adds nothing")
	require.Contains(t, out, "FAIL: 3 packages, failed tests: 2, skipped tests: 0")
}

const broken = `{"ImportPath":"m/broken [m/broken.test]","Action":"build-output","Output":"# m/broken\n"}
{"ImportPath":"m/broken [m/broken.test]","Action":"build-output","Output":"b_test.go:3:28: undefined: undefined\n"}
{"ImportPath":"m/broken [m/broken.test]","Action":"build-fail"}
{"Action":"start","Package":"m/broken"}
{"Action":"output","Package":"m/broken","Output":"FAIL\tm/broken [build failed]\n"}
{"Action":"fail","Package":"m/broken","Elapsed":0,"FailedBuild":"m/broken [m/broken.test]"}
`

func TestABuildFailureShowsTheCompilerOutput(t *testing.T) {
	ok, out, _ := run(t, stream+broken)
	require.False(t, ok, out)
	require.Contains(t, out, "FAIL\tm/broken\t0.000s [build failed]\n")
	require.Contains(t, out, "=== FAIL m/broken (outside any test)\n")
	require.Contains(t, out, "b_test.go:3:28: undefined: undefined\n")
}
