package walarchive

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/internal/backupstore"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// noDocker is the Docker of an archiver that is never run.
type noDocker struct{}

func (noDocker) Exec(context.Context, string, string, []string, io.Reader, io.Writer) (dockerrt.ExecResult, error) {
	return dockerrt.ExecResult{}, errors.New("not in this test")
}

// TestDeleteWAL: retention removes the files wholly before each range's
// end and nothing else; ranges of another node, another destination or a
// malformed position are refused with nothing removed.
func TestDeleteWAL(t *testing.T) {
	root, stateDir := t.TempDir(), t.TempDir()
	store, err := backupstore.NewDir(backupstore.DirConfig{Root: root})
	require.NoError(t, err)
	ks, err := OpenKeyStore(stateDir)
	require.NoError(t, err)
	dest := &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: root}}
	a, err := New(Config{Docker: noDocker{}, Node: "node-1", Store: store, Prefix: testPrefix, Destination: dest, Keys: ks, StateDir: stateDir})
	require.NoError(t, err)
	names := []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003",
		"000000010000000000000004.partial", "00000002.history"}
	for _, n := range names {
		_, err := store.Put(t.Context(), StoredName(testPrefix, 1, n), strings.NewReader("x"))
		require.NoError(t, err)
	}
	for _, n := range []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003"} {
		s, _ := ParseSegment(n)
		a.st.add(s, s.Start+SegmentSize, 1, "k", a.cfg.Now())
	}
	left := func() []string {
		es, err := os.ReadDir(filepath.Join(root, testPrefix, "00000001"))
		require.NoError(t, err)
		var out []string
		for _, e := range es {
			out = append(out, strings.TrimSuffix(e.Name(), encSuffix))
		}
		return out
	}

	for _, bad := range []*forlockv1.WalRange{
		{NodeId: "node-2", Timeline: 1, EndLsn: "0/FF000000"},
		{Timeline: 1, EndLsn: "0/FF000000", Destination: &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: "/etc"}}},
		{Timeline: 1, EndLsn: "../../0/1"},
		{Timeline: 0, EndLsn: "0/FF000000"},
	} {
		_, err := a.Delete(t.Context(), "node-1", []*forlockv1.WalRange{bad})
		require.Error(t, err, "%v", bad)
	}
	require.Len(t, left(), len(names), "nothing removed by a refused range")

	// End inside segment 3: segments 1 and 2 go, 3 (still needed) stays.
	n, err := a.Delete(t.Context(), "node-1", []*forlockv1.WalRange{{NodeId: "node-1", Timeline: 1, EndLsn: "0/3000100", Destination: dest}})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, []string{"000000010000000000000003", "000000010000000000000004.partial", "00000002.history"}, left())
	rep := a.Report()
	require.Len(t, rep.GetRanges(), 1)
	require.Equal(t, "0/3000000", rep.GetRanges()[0].GetStartLsn())
	require.Equal(t, uint64(1), rep.GetRanges()[0].GetSegments())
	n, err = a.Delete(t.Context(), "node-1", []*forlockv1.WalRange{{Timeline: 1, EndLsn: "0/3000100"}}) // again: nothing left to do
	require.NoError(t, err)
	require.Equal(t, 0, n)

	// The files of a range already gone from disk (deleted by hand): the
	// range is still trimmed, so the agent stops reporting WAL it lacks.
	require.NoError(t, os.RemoveAll(filepath.Join(root, testPrefix, "00000001")))
	n, err = a.Delete(t.Context(), "node-1", []*forlockv1.WalRange{{Timeline: 1, EndLsn: "0/5000000"}})
	require.NoError(t, err)
	require.Equal(t, 0, n)
	require.Empty(t, a.Report().GetRanges())
}
