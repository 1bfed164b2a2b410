package walarchive

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/backupstore"
	"github.com/forlock/fleet/internal/keys"
)

// storeWAL writes body as the stored WAL file name, as the archiver does.
func storeWAL(t *testing.T, st backupstore.Store, kf *keys.File, name string, body []byte) {
	t.Helper()
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := kf.Wrap(context.Background(), dk)
	require.NoError(t, err)
	var buf bytes.Buffer
	w, err := artifact.NewWriter(&buf, artifact.Header{Kind: artifact.KindWal, Node: "n1", Created: time.Now(),
		KeyID: kf.KeyID(), WrappedKey: wrapped, FileName: name}, dk)
	require.NoError(t, err)
	_, err = w.Write(body)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = st.Put(context.Background(), StoredName(testPrefix, 1, name), &buf)
	require.NoError(t, err)
}

// TestFetchPadsAPartialSegment: a partial is shipped only up to what was
// flushed; fetched, it is a whole segment again (the shipped bytes, then
// zeros), while a complete segment or a history file comes back as stored.
func TestFetchPadsAPartialSegment(t *testing.T) {
	st, err := backupstore.NewDir(backupstore.DirConfig{Root: t.TempDir()})
	require.NoError(t, err)
	k, err := keys.NewDataKey()
	require.NoError(t, err)
	kf, err := keys.NewNamed("archive:n1:1", k)
	require.NoError(t, err)
	kr := Keyring{kf.KeyID(): kf}

	flushed := bytes.Repeat([]byte{0xd1, 0x00, 0x07}, 1000)
	storeWAL(t, st, kf, "000000010000000000000003.partial", flushed)
	var got bytes.Buffer
	n, err := Fetch(context.Background(), st, testPrefix, 1, "000000010000000000000003.partial", kr, &got)
	require.NoError(t, err)
	require.EqualValues(t, SegmentSize, n)
	require.Equal(t, SegmentSize, got.Len())
	require.Equal(t, flushed, got.Bytes()[:len(flushed)])
	require.Equal(t, make([]byte, SegmentSize-len(flushed)), got.Bytes()[len(flushed):])

	hist := []byte("1\t0/3000000\tno recovery target specified\n")
	storeWAL(t, st, kf, "00000002.history", hist)
	got.Reset()
	_, err = Fetch(context.Background(), st, testPrefix, 1, "00000002.history", kr, &got)
	require.NoError(t, err)
	require.Equal(t, hist, got.Bytes(), "a history file is not padded")
}
