package logstream

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lines is a Source of fixed lines per service; with follow it then waits
// for the context, as a followed container log does.
type lines map[string][]string

func (l lines) Logs(ctx context.Context, svc string, o dockerrt.LogOptions, fn func(dockerrt.LogLine) error) error {
	for _, t := range l[svc] {
		if err := fn(dockerrt.LogLine{Text: t, Stream: "stdout", Time: time.Now()}); err != nil {
			return err
		}
	}
	if o.Follow {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

type recorder struct {
	mu   sync.Mutex
	msgs []*forlockv1.PushLogsRequest
	fail error
}

func (r *recorder) Send(m *forlockv1.PushLogsRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return r.fail
}

func (r *recorder) texts() map[string][]string {
	out := map[string][]string{}
	for _, m := range r.msgs {
		for _, l := range m.GetLines() {
			out[l.GetService()] = append(out[l.GetService()], l.GetText())
		}
	}
	return out
}

func TestServeFiltersErrors(t *testing.T) {
	src := lines{
		"api":      {`{"level":"info","msg":"ok"}`, `{"level":"error","msg":"db down"}`},
		"postgres": {`LOG:  checkpoint`, `ERROR:  relation "x" does not exist`},
		"nginx":    {`[warn] 1#1: x`, `[crit] 1#1: y`},
		"redis":    {`Ready to accept connections`},
	}
	rec := &recorder{}
	err := Serve(context.Background(), &forlockv1.LogRequest{RequestId: "r1", Query: &forlockv1.LogQuery{ErrorsOnly: true}}, src, rec)
	require.NoError(t, err)
	require.Equal(t, "r1", rec.msgs[0].GetRequestId(), "the first message names the request")
	require.Equal(t, map[string][]string{
		"api":      {`{"level":"error","msg":"db down"}`},
		"postgres": {`ERROR:  relation "x" does not exist`},
		"nginx":    {`[crit] 1#1: y`},
	}, rec.texts())
}

func TestServeBatches(t *testing.T) {
	many := make([]string, 1000)
	for i := range many {
		many[i] = "line"
	}
	rec := &recorder{}
	require.NoError(t, Serve(context.Background(), &forlockv1.LogRequest{Query: &forlockv1.LogQuery{Services: []string{"api"}}}, lines{"api": many}, rec))
	require.Len(t, rec.texts()["api"], 1000)
	for _, m := range rec.msgs {
		require.LessOrEqual(t, len(m.GetLines()), batchLines)
	}
}

func TestServeStopsWhenTheStreamFails(t *testing.T) {
	rec := &recorder{fail: errors.New("reader gone")}
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), &forlockv1.LogRequest{Query: &forlockv1.LogQuery{Follow: true}}, lines{"api": {"a"}}, rec)
	}()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "reader gone")
	case <-time.After(5 * time.Second):
		t.Fatal("a followed log kept running after its stream failed")
	}
}

type broken struct{}

func (broken) Logs(context.Context, string, dockerrt.LogOptions, func(dockerrt.LogLine) error) error {
	return errors.New("no container for service")
}

func TestServeReportsReadErrors(t *testing.T) {
	rec := &recorder{}
	require.NoError(t, Serve(context.Background(), &forlockv1.LogRequest{Query: &forlockv1.LogQuery{Services: []string{"redis"}}}, broken{}, rec))
	require.Contains(t, rec.msgs[len(rec.msgs)-1].GetError(), "no container")
}
