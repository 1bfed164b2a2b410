package artifact

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/keys"
)

func sealForTest(t *testing.T, kek keys.Wrapper, plain []byte) ([]byte, []byte) {
	t.Helper()
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := kek.Wrap(context.Background(), dk)
	require.NoError(t, err)
	h := Header{Kind: KindConfig, Node: "node-a", Created: time.Now(), KeyID: kek.KeyID(), WrappedKey: wrapped, FileName: "config_x.tar"}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h, dk)
	require.NoError(t, err)
	_, err = w.Write(plain)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes(), dk
}

// replaceHeader re-encodes the header of raw after mutate, keeping the body.
func replaceHeader(t *testing.T, raw []byte, mutate func(*Header)) []byte {
	t.Helper()
	r := bytes.NewReader(raw)
	h, err := ReadHeader(r)
	require.NoError(t, err)
	mutate(&h)
	hdr, _, err := h.encode()
	require.NoError(t, err)
	body, err := io.ReadAll(r)
	require.NoError(t, err)
	return append(hdr, body...)
}

func TestHeaderTamperRefused(t *testing.T) {
	kek, err := keys.LoadOrCreateFile(filepath.Join(t.TempDir(), "kek.json"))
	require.NoError(t, err)
	raw, dk := sealForTest(t, kek, []byte("compose file"))
	for name, mutate := range map[string]func(*Header){
		"node":      func(h *Header) { h.Node = "node-b" },
		"kind":      func(h *Header) { h.Kind = KindRedis },
		"created":   func(h *Header) { h.Created = h.Created.Add(time.Second) },
		"file name": func(h *Header) { h.FileName = "config_y.tar" },
	} {
		t.Run(name, func(t *testing.T) {
			bad := replaceHeader(t, raw, mutate)
			_, r, err := Open(bytes.NewReader(bad), PlainKey(dk))
			require.NoError(t, err, "the header itself is well-formed")
			_, err = io.ReadAll(r)
			require.ErrorIs(t, err, ErrCorrupted)
		})
	}
}

// A key rotation rewraps the data key and rewrites only the key section;
// the body stays valid.
func TestRewrapKeepsBodyValid(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	oldKEK, err := keys.LoadOrCreateFile(filepath.Join(dir, "old.json"))
	require.NoError(t, err)
	newKEK, err := keys.LoadOrCreateFile(filepath.Join(dir, "new.json"))
	require.NoError(t, err)
	raw, dk := sealForTest(t, oldKEK, []byte("compose file"))

	rewrapped, err := newKEK.Wrap(ctx, dk)
	require.NoError(t, err)
	rotated := replaceHeader(t, raw, func(h *Header) { h.KeyID, h.WrappedKey = newKEK.KeyID(), rewrapped })

	h, r, err := Open(bytes.NewReader(rotated), UnwrapWith(ctx, newKEK))
	require.NoError(t, err)
	require.Equal(t, newKEK.KeyID(), h.KeyID)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, "compose file", string(got))

	// A key section naming another data key is refused before the body.
	other, err := keys.NewDataKey()
	require.NoError(t, err)
	otherWrapped, err := newKEK.Wrap(ctx, other)
	require.NoError(t, err)
	swapped := replaceHeader(t, raw, func(h *Header) { h.KeyID, h.WrappedKey = newKEK.KeyID(), otherWrapped })
	_, _, err = Open(bytes.NewReader(swapped), UnwrapWith(ctx, newKEK))
	require.ErrorIs(t, err, ErrWrongKey)
}
