package commands

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestUsageErrorsExit64(t *testing.T) {
	conn := map[string]string{"HOME": t.TempDir(), envAddr: closedAddr(t), envToken: "tok"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown service", []string{"logs", "--node", "n1", "mysql"}, `unknown service "mysql": use any of api, postgres, redis, nginx`},
		{"tail too large", []string{"logs", "--node", "n1", "--tail", "100001"}, "--tail 100001: at most 100000"},
		{"negative since", []string{"logs", "--node", "n1", "--since", "-5m"}, "--since -5m0s: give a positive duration"},
		{"bad since", []string{"logs", "--node", "n1", "--since", "yesterday"}, `invalid argument "yesterday" for "--since"`},
		{"export and follow", []string{"logs", "--node", "n1", "-f", "--export", "x.tar.gz"}, "--export and -f cannot be combined"},
		{"export and json", []string{"-o", "json", "logs", "--node", "n1", "--export", "x.tar.gz"}, "--export and -o json cannot be combined"},
		{"empty export", []string{"logs", "--node", "n1", "--export", ""}, "--export: give a file name"},
		{"empty node", []string{"logs", "--node", " "}, "--node: empty node name"},
		{"health without target", []string{"health"}, "no target: choose the nodes"},
		{"health two targets", []string{"health", "--all", "--node", "a"}, "--node and --all cannot be combined"},
		{"health cached with rollout flags", []string{"health", "--all", "--cached", "--max-parallel", "2", "--detach"}, "--cached runs no job: drop --max-parallel, --detach"},
		{"health-check too", []string{"health-check", "--all", "--offline", "never"}, `--offline "never"`},
		{"status with args", []string{"status", "x"}, "takes no arguments"},
		{"status bad selector", []string{"status", "-l", "a==b"}, "label selector"},
		{"unknown flag", []string{"status", "--verbose"}, "unknown flag: --verbose"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, conn, tt.args...)
			require.Equal(t, ExitUsage, code, "stderr: %s", stderr)
			require.Equal(t, 64, code, "EX_USAGE")
			require.Contains(t, stderr, tt.want)
			require.Empty(t, stdout)
		})
	}
}

func TestLogQueryDropsDuplicateServices(t *testing.T) {
	o := &logOpts{tail: 5, since: time.Hour, errors: true, follow: true}
	q, err := o.query(pflag.NewFlagSet("logs", pflag.ContinueOnError), outputTable, []string{"API", "nginx", "api"})
	require.NoError(t, err)
	require.Equal(t, []string{"api", "nginx"}, q.GetServices())
	require.Equal(t, uint32(5), q.GetTail())
	require.Equal(t, time.Hour, q.GetSince().AsDuration())
	require.True(t, q.GetErrorsOnly())
	require.True(t, q.GetFollow())
}

func logLine(service, text string, at time.Time) *forlockv1.LogLine {
	return &forlockv1.LogLine{Service: service, Time: timestamppb.New(at), Stream: "stdout", Text: text}
}

func TestLogPrinter(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 1, 234567000, time.UTC)
	lines := []*forlockv1.LogLine{logLine("api", `{"level":"info","msg":"up"}`, at), logLine("postgres", "LOG:  ready", at)}
	for _, tt := range []struct {
		name string
		p    logPrinter
		want string
	}{
		{"plain", logPrinter{}, "api      | {\"level\":\"info\",\"msg\":\"up\"}\npostgres | LOG:  ready\n"},
		{"timestamps", logPrinter{timestamps: true}, "2026-03-01T12:00:01.234Z api      | {\"level\":\"info\",\"msg\":\"up\"}\n" +
			"2026-03-01T12:00:01.234Z postgres | LOG:  ready\n"},
		{"json", logPrinter{json: true}, `{"service":"api","time":"2026-03-01T12:00:01.234567Z","stream":"stdout","text":"{\"level\":\"info\",\"msg\":\"up\"}"}` + "\n" +
			`{"service":"postgres","time":"2026-03-01T12:00:01.234567Z","stream":"stdout","text":"LOG:  ready"}` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p := tt.p
			p.w = bufio.NewWriter(&out)
			for _, l := range lines {
				require.NoError(t, p.add(l))
			}
			require.NoError(t, p.endBatch())
			require.Equal(t, tt.want, out.String())
		})
	}
}

// readTarGz returns the archive's files by name, in order.
func readTarGz(t *testing.T, r io.Reader) (names []string, files map[string]string) {
	t.Helper()
	zr, err := gzip.NewReader(r)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	files = map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.Equal(t, int64(0o644), hdr.Mode)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		names = append(names, hdr.Name)
		files[hdr.Name] = string(b)
	}
	require.NoError(t, zr.Close())
	return names, files
}

func TestLogArchiveRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	x, err := newLogArchive([]string{"api", "postgres", "redis"})
	require.NoError(t, err)
	dir := x.dir
	long := strings.Repeat("x", 70000)
	for _, l := range []*forlockv1.LogLine{
		logLine("api", "first", at), logLine("postgres", "ERROR:  boom", at), logLine("api", long, at.Add(time.Second)),
		logLine("nginx", "not asked for", at), {Service: "api", Text: "no time"},
	} {
		require.NoError(t, x.add(l))
	}
	require.Equal(t, map[string]int{"api": 3, "postgres": 1}, x.counts)

	var buf bytes.Buffer
	require.NoError(t, x.write(&buf, at))
	names, files := readTarGz(t, &buf)
	require.Equal(t, []string{"api.log", "postgres.log", "redis.log"}, names, "one file per service asked for, in order")
	require.Equal(t, "2026-03-01T12:00:00.000000005Z first\n2026-03-01T12:00:01.000000005Z "+long+"\n- no time\n", files["api.log"])
	require.Equal(t, "2026-03-01T12:00:00.000000005Z ERROR:  boom\n", files["postgres.log"])
	require.Empty(t, files["redis.log"], "a service without lines gets an empty file")

	path := filepath.Join(t.TempDir(), "logs.tar.gz")
	require.NoError(t, x.save(path, at))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { require.NoError(t, f.Close()) }()
	_, again := readTarGz(t, f)
	require.Equal(t, files, again, "save writes the same archive")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left beside the export")

	var out bytes.Buffer
	require.NoError(t, printExport(&out, path, x))
	require.Equal(t, "Wrote "+path+"\nFILE          LINES\napi.log       3\npostgres.log  1\nredis.log     0\n", out.String())

	x.close()
	_, err = os.Stat(dir)
	require.True(t, os.IsNotExist(err), "close removes the temporary files")
}

func TestLogArchiveSaveFailsCleanly(t *testing.T) {
	x, err := newLogArchive([]string{"api"})
	require.NoError(t, err)
	defer x.close()
	err = x.save(filepath.Join(t.TempDir(), "missing", "logs.tar.gz"), renderNow)
	require.ErrorContains(t, err, "export to ")
}

func TestExplainLogs(t *testing.T) {
	s := settings{address: "cp:7443", from: "--addr"}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unavailable, "node web-1 is not connected: its logs cannot be read now"), "node web-1 is not connected: its logs cannot be read now"},
		{status.Error(codes.FailedPrecondition, "the agent on node web-1 cannot stream logs: upgrade it"), "the agent on node web-1 cannot stream logs: upgrade it"},
		{status.Error(codes.Unavailable, "connection error: refused"), "cannot reach the control plane at cp:7443"},
		{status.Error(codes.NotFound, `node "x" not found`), `node "x" not found`},
	} {
		require.Contains(t, explainLogs(tt.err, s).Error(), tt.want)
	}
}
