package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// logServices are the services whose logs a node serves, as LogQuery names
// them.
var logServices = []string{"api", "postgres", "redis", "nginx"}

// maxLogTail is LogQuery.tail's upper limit.
const maxLogTail = 100000

// logOpts are the flags of "logs".
type logOpts struct {
	node       string
	follow     bool
	tail       uint32
	since      time.Duration
	errors     bool
	export     string
	timestamps bool
}

func newLogsCmd(a *app) *cobra.Command {
	var o logOpts
	cmd := &cobra.Command{
		Use:   "logs [SERVICE...]",
		Short: "Show or export the logs of a node's Forlock containers",
		Long: `Show the log lines of a node's Forlock containers, as "SERVICE | TEXT" (with
--timestamps, the time first; with -o json, one JSON object per line with
service, time, stream and text). SERVICE is any of api, postgres, redis,
nginx; none means all four.

--node is required unless the fleet has exactly one node. -f keeps
following new lines until Ctrl-C, which ends the command with exit code 0.
--errors keeps only error lines: a JSON "level" of error, fatal, panic or
critical; the words ERROR, FATAL, PANIC or CRITICAL; PostgreSQL "ERROR:",
"FATAL:", "PANIC:"; nginx "[error]", "[crit]", "[alert]", "[emerg]".

--export FILE (not with -f) writes a tar.gz holding one <service>.log per
service asked for, even when it had no line (then the file is empty); each
line is "TIME TEXT" with TIME in RFC 3339 UTC. It prints the path and the
number of lines per service.`,
		Example: `  forlockctl logs --node web-1
  forlockctl logs api nginx --node web-1 -f
  forlockctl logs postgres --node web-1 --since 1h --errors
  forlockctl logs --node web-1 --tail 10000 --export web-1-logs.tar.gz`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := o.query(cmd.Flags(), a.output, args)
			if err != nil {
				return err
			}
			return a.logs(cmd.Context(), &o, q)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.node, "node", "", "node name or ID (required unless the fleet has one node)")
	fs.BoolVarP(&o.follow, "follow", "f", false, "keep printing new lines until Ctrl-C")
	fs.Uint32Var(&o.tail, "tail", 0, fmt.Sprintf("the last this many lines of each service (default 100, at most %d)", maxLogTail))
	fs.DurationVar(&o.since, "since", 0, "only lines newer than this, e.g. 30m or 24h")
	fs.BoolVar(&o.errors, "errors", false, "only error lines")
	fs.StringVar(&o.export, "export", "", "write the lines to this tar.gz, one file per service")
	fs.BoolVar(&o.timestamps, "timestamps", false, "print each line's time")
	return cmd
}

// query checks the command line and builds the query. Services are
// checked here, before any call.
func (o *logOpts) query(fs *pflag.FlagSet, output string, args []string) (*forlockv1.LogQuery, error) {
	var services []string
	for _, s := range args {
		s = strings.ToLower(strings.TrimSpace(s))
		if !slices.Contains(logServices, s) {
			return nil, usageErrorf("unknown service %q: use any of %s", s, strings.Join(logServices, ", "))
		}
		if !slices.Contains(services, s) {
			services = append(services, s)
		}
	}
	switch {
	case fs.Changed("node") && strings.TrimSpace(o.node) == "":
		return nil, usageErrorf("--node: empty node name: give a node name or ID")
	case o.tail > maxLogTail:
		return nil, usageErrorf("--tail %d: at most %d", o.tail, maxLogTail)
	case o.since < 0:
		return nil, usageErrorf("--since %s: give a positive duration, e.g. --since 30m", o.since)
	case fs.Changed("export") && o.export == "":
		return nil, usageErrorf("--export: give a file name, e.g. --export logs.tar.gz")
	case o.export != "" && o.follow:
		return nil, usageErrorf("--export and -f cannot be combined: an export needs an end")
	case o.export != "" && output == outputJSON:
		return nil, usageErrorf("--export and -o json cannot be combined")
	}
	q := &forlockv1.LogQuery{Services: services, Follow: o.follow, Tail: o.tail, ErrorsOnly: o.errors}
	if o.since > 0 {
		q.Since = durationpb.New(o.since)
	}
	return q, nil
}

// logs streams the lines of q from the node, to stdout or the export.
func (a *app) logs(ctx context.Context, o *logOpts, q *forlockv1.LogQuery) error {
	s, err := resolveSettings(a.conn, a.io.Getenv)
	if err != nil {
		return err
	}
	conn, err := dial(s)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	node := strings.TrimSpace(o.node)
	if node == "" {
		if node, err = onlyNode(ctx, s, forlockv1.NewNodeServiceClient(conn)); err != nil {
			return err
		}
	}
	var sink logSink = &logPrinter{w: bufio.NewWriter(a.io.Out), json: a.output == outputJSON, timestamps: o.timestamps}
	var archive *logArchive
	if o.export != "" {
		services := q.GetServices()
		if len(services) == 0 {
			services = logServices
		}
		if archive, err = newLogArchive(services); err != nil {
			return err
		}
		defer archive.close()
		sink = archive
	}
	err = streamLogs(ctx, forlockv1.NewLogServiceClient(conn), &forlockv1.StreamLogsRequest{Node: node, Query: q}, sink)
	switch {
	case ctx.Err() != nil && o.follow:
		return nil // Ctrl-C is how -f ends
	case ctx.Err() != nil:
		return &exitError{code: ExitInterrupted, err: errors.New("interrupted")}
	case err != nil:
		return explainLogs(err, s)
	case archive != nil:
		if err := archive.save(o.export, a.now()); err != nil {
			return err
		}
		return printExport(a.io.Out, o.export, archive)
	}
	return nil
}

// onlyNode is the fleet's node when it has exactly one.
func onlyNode(ctx context.Context, s settings, c forlockv1.NodeServiceClient) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := c.ListNodes(cctx, &forlockv1.ListNodesRequest{})
	if err != nil {
		return "", explainRPC(err, s)
	}
	nodes := resp.GetNodes()
	switch len(nodes) {
	case 0:
		return "", errors.New("the fleet has no nodes: enroll one first (see 'forlockctl tokens create')")
	case 1:
		return nodes[0].GetName(), nil
	}
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		names = append(names, n.GetName())
	}
	if len(names) > 5 {
		names = append(names[:5], "...")
	}
	return "", usageErrorf("--node is required: the fleet has %d nodes (%s)", len(nodes), strings.Join(names, ", "))
}

// logSink receives the streamed lines.
type logSink interface {
	add(l *forlockv1.LogLine) error
}

// batchEnder is a sink that wants to know when a batch is complete, e.g.
// to flush its output.
type batchEnder interface {
	endBatch() error
}

// streamLogs copies the stream's lines into sink until it ends.
func streamLogs(ctx context.Context, c forlockv1.LogServiceClient, req *forlockv1.StreamLogsRequest, sink logSink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.StreamLogs(ctx, req)
	if err != nil {
		return err
	}
	return drain(stream, sink)
}

func drain(stream grpc.ServerStreamingClient[forlockv1.StreamLogsResponse], sink logSink) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, l := range msg.GetLines() {
			if err := sink.add(l); err != nil {
				return err
			}
		}
		if b, ok := sink.(batchEnder); ok {
			if err := b.endBatch(); err != nil {
				return err
			}
		}
	}
}

// explainLogs maps StreamLogs errors: the control plane's own Unavailable
// ("node web-1 is not connected: ...", "node web-1: <agent error>") and
// FailedPrecondition (the agent cannot stream logs) are shown as they are;
// an Unavailable that does not name a node is the control plane itself
// being out of reach.
func explainLogs(err error, s settings) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && strings.HasPrefix(st.Message(), "node ") {
		return &rpcError{msg: st.Message(), err: err}
	}
	return explainRPC(err, s)
}

// logPrinter writes lines for people ("SERVICE | TEXT") or as JSON lines.
type logPrinter struct {
	w          *bufio.Writer
	json       bool
	timestamps bool
}

// jsonLogLine is the -o json form of a line.
type jsonLogLine struct {
	Service string `json:"service"`
	Time    string `json:"time,omitempty"`
	Stream  string `json:"stream,omitempty"`
	Text    string `json:"text"`
}

func (p *logPrinter) add(l *forlockv1.LogLine) error {
	ts := ""
	if l.GetTime() != nil {
		ts = l.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	}
	if p.json {
		b, err := json.Marshal(jsonLogLine{Service: l.GetService(), Time: ts, Stream: l.GetStream(), Text: l.GetText()})
		if err != nil {
			return fmt.Errorf("encode log line: %w", err)
		}
		b = append(b, '\n')
		if _, err := p.w.Write(b); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	if _, err := io.WriteString(p.w, formatLogLine(l, p.timestamps)); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func (p *logPrinter) endBatch() error {
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// formatLogLine is "postgres | TEXT\n", the service padded to the longest
// name; with timestamps the time comes first, to the millisecond.
func formatLogLine(l *forlockv1.LogLine, timestamps bool) string {
	var b strings.Builder
	if timestamps {
		if l.GetTime() != nil {
			b.WriteString(l.GetTime().AsTime().UTC().Format("2006-01-02T15:04:05.000Z"))
		} else {
			b.WriteString("-")
		}
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "%-8s | %s\n", l.GetService(), l.GetText())
	return b.String()
}

// printExport tells where the export went and what it holds.
func printExport(w io.Writer, path string, x *logArchive) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Wrote %s\n", path)
	tw := newTable(&b)
	fmt.Fprintln(tw, "FILE\tLINES")
	for _, s := range x.services {
		fmt.Fprintf(tw, "%s.log\t%d\n", s, x.counts[s])
	}
	if err := flush(tw); err != nil {
		return err
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
