package vault

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
)

func TestParseTransitKeyID(t *testing.T) {
	name, v, err := parseTransitKeyID("vault-transit:backup:v12")
	require.NoError(t, err)
	require.Equal(t, "backup", name)
	require.Equal(t, 12, v)
	for _, id := range []string{"local:1a2b3c4d", "vault-transit:backup", "vault-transit::v1", "vault-transit:backup:v0", "vault-transit:backup:vx", "vault-transit:a/b:v1"} {
		_, _, err := parseTransitKeyID(id)
		require.ErrorIs(t, err, keys.ErrUnknownKey, id)
	}
	v, err = ciphertextVersion("vault:v3:abcd")
	require.NoError(t, err)
	require.Equal(t, 3, v)
	for _, ct := range []string{"", "vault:v3:", "vault:3:abcd", "vault:v0:abcd", "xyz"} {
		_, err := ciphertextVersion(ct)
		require.Error(t, err, ct)
	}
}

// rotate rotates the Transit key name on the shared server.
func rotate(t *testing.T, name string) {
	t.Helper()
	_, err := admin(t).Logical().Write("transit/keys/"+name+"/rotate", nil)
	require.NoError(t, err)
}

func TestTransitWrapUnwrapRotateRewrap(t *testing.T) {
	ctx := context.Background()
	cfg := fleetConfig(t)
	tr, err := newClient(t, cfg).Transit(ctx)
	require.NoError(t, err)
	v1 := "vault-transit:" + cfg.TransitKey + ":v1"
	require.Equal(t, v1, tr.KeyID())

	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := tr.Wrap(ctx, dk)
	require.NoError(t, err)
	require.Equal(t, v1, tr.KeyID())
	require.True(t, bytes.HasPrefix(wrapped, []byte("vault:v1:")))
	require.LessOrEqual(t, len(wrapped), artifact.MaxWrappedKeyLen)
	plain, err := tr.Unwrap(ctx, v1, wrapped)
	require.NoError(t, err)
	require.Equal(t, dk, plain)

	// Rotation in Vault: the next Wrap uses v2 and KeyID follows.
	rotate(t, cfg.TransitKey)
	v2 := "vault-transit:" + cfg.TransitKey + ":v2"
	wrapped2, err := tr.Wrap(ctx, dk)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(wrapped2, []byte("vault:v2:")))
	require.Equal(t, v2, tr.KeyID())

	// The v1 wrapped key still unwraps.
	plain, err = tr.Unwrap(ctx, v1, wrapped)
	require.NoError(t, err)
	require.Equal(t, dk, plain)

	// Rewrap moves it to v2, without the plain key leaving Vault.
	newID, rewrapped, err := tr.Rewrap(ctx, v1, wrapped)
	require.NoError(t, err)
	require.Equal(t, v2, newID)
	require.True(t, bytes.HasPrefix(rewrapped, []byte("vault:v2:")))
	plain, err = tr.Unwrap(ctx, newID, rewrapped)
	require.NoError(t, err)
	require.Equal(t, dk, plain)

	// Once v1 may no longer decrypt, the old wrapped key names a version
	// Vault does not hold; the rewrapped one still unwraps.
	_, err = admin(t).Logical().Write("transit/keys/"+cfg.TransitKey+"/config", map[string]any{"min_decryption_version": 2})
	require.NoError(t, err)
	_, err = tr.Unwrap(ctx, v1, wrapped)
	require.ErrorIs(t, err, keys.ErrUnknownKey)
	require.ErrorContains(t, err, "does not hold that version of "+v1)
	_, err = tr.Unwrap(ctx, newID, rewrapped)
	require.NoError(t, err)

	// Refresh sees a rotation made without any Wrap.
	rotate(t, cfg.TransitKey)
	require.NoError(t, tr.Refresh(ctx))
	require.Equal(t, "vault-transit:"+cfg.TransitKey+":v3", tr.KeyID())
}

func TestTransitUnwrapErrors(t *testing.T) {
	ctx := context.Background()
	cfg := fleetConfig(t)
	tr, err := newClient(t, cfg).Transit(ctx)
	require.NoError(t, err)
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := tr.Wrap(ctx, dk)
	require.NoError(t, err)

	// Another Transit key's ciphertext under this key's ID.
	other := newTransitKey(t)
	cfg2 := cfg
	cfg2.TransitKey = other
	tr2, err := newClient(t, cfg2).Transit(ctx)
	require.NoError(t, err)
	wrappedOther, err := tr2.Wrap(ctx, dk)
	require.NoError(t, err)

	tampered := bytes.Clone(wrapped)
	tampered[len(tampered)-3] ^= 'A' ^ 'B'
	tests := []struct {
		name    string
		keyID   string
		wrapped []byte
		kind    error
		want    string
	}{
		{"local key ID", "local:1a2b3c4d", wrapped, keys.ErrUnknownKey, `key ID "local:1a2b3c4d" is not a vault transit key ID`},
		{"key that does not exist", "vault-transit:gone:v1", wrapped, keys.ErrUnknownKey, "has no transit key for vault-transit:gone:v1"},
		{"version not made yet", tr.KeyID(), []byte("vault:v9" + string(wrapped[len("vault:v1"):])), keys.ErrUnknownKey, "does not hold that version"},
		{"another key's ciphertext", tr.KeyID(), wrappedOther, keys.ErrWrongKey, "cannot decrypt the wrapped key of " + tr.KeyID()},
		{"tampered", tr.KeyID(), tampered, keys.ErrWrongKey, "it is damaged or was wrapped by another key"},
		{"not a ciphertext", tr.KeyID(), []byte("0123456789"), keys.ErrWrongKey, "not a vault transit ciphertext"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tr.Unwrap(ctx, tt.keyID, tt.wrapped)
			require.ErrorIs(t, err, tt.kind)
			require.ErrorContains(t, err, tt.want)
		})
	}
	// A key ID naming another key on the mount unwraps with that key (backups
	// from before TransitKey changed).
	plain, err := tr.Unwrap(ctx, tr2.KeyID(), wrappedOther)
	require.NoError(t, err)
	require.Equal(t, dk, plain)
}

func TestTransitDataKey(t *testing.T) {
	ctx := context.Background()
	cfg := fleetConfig(t)
	tr, err := newClient(t, cfg).Transit(ctx)
	require.NoError(t, err)
	rotate(t, cfg.TransitKey)
	plain, wrapped, keyID, err := tr.DataKey(ctx)
	require.NoError(t, err)
	require.Len(t, plain, keys.DataKeySize)
	require.Equal(t, "vault-transit:"+cfg.TransitKey+":v2", keyID)
	require.Equal(t, keyID, tr.KeyID())
	got, err := tr.Unwrap(ctx, keyID, wrapped)
	require.NoError(t, err)
	require.Equal(t, plain, got)
}

// A backup artifact sealed with a Transit-wrapped data key restores, before
// and after the key rotates and the artifact's key is rewrapped.
func TestTransitArtifactRestores(t *testing.T) {
	ctx := context.Background()
	cfg := fleetConfig(t)
	tr, err := newClient(t, cfg).Transit(ctx)
	require.NoError(t, err)
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := tr.Wrap(ctx, dk)
	require.NoError(t, err)
	h := artifact.Header{Kind: artifact.KindConfig, Node: "node-a", Created: time.Now(), KeyID: tr.KeyID(), WrappedKey: wrapped, FileName: "config_x.tar"}
	var buf bytes.Buffer
	w, err := artifact.NewWriter(&buf, h, dk)
	require.NoError(t, err)
	_, err = w.Write([]byte("compose file"))
	require.NoError(t, err)
	require.NoError(t, w.Close())

	restore := func(raw []byte) string {
		t.Helper()
		_, r, err := artifact.Open(bytes.NewReader(raw), artifact.UnwrapWith(ctx, tr))
		require.NoError(t, err)
		defer r.Close() //nolint:errcheck // read-only
		body, err := io.ReadAll(r)
		require.NoError(t, err)
		return string(body)
	}
	require.Equal(t, "compose file", restore(buf.Bytes()))
	rotate(t, cfg.TransitKey)
	require.Equal(t, "compose file", restore(buf.Bytes()), "an old backup restores after rotation")
	newID, rewrapped, err := tr.Rewrap(ctx, h.KeyID, h.WrappedKey)
	require.NoError(t, err)
	require.NotEqual(t, h.KeyID, newID)
	_, err = tr.Unwrap(ctx, newID, rewrapped)
	require.NoError(t, err)
}

// TestTransitAssociatedData: a Transit with associated data wraps and
// unwraps through a real Vault; its wrapped key does not unwrap without the
// associated data or with another, nor does a key wrapped without it
// unwrap with it; a key type that cannot bind associated data is refused
// by Refresh; it neither rewraps nor makes data keys.
func TestTransitAssociatedData(t *testing.T) {
	ctx := context.Background()
	cfg := fleetConfig(t)
	c := newClient(t, cfg)
	snap, err := c.TransitFor(cfg.TransitKey, []byte("purpose one"))
	require.NoError(t, err)
	require.NoError(t, snap.Refresh(ctx))
	plainT, err := c.TransitFor(cfg.TransitKey, nil)
	require.NoError(t, err)
	otherAD, err := c.TransitFor(cfg.TransitKey, []byte("purpose two"))
	require.NoError(t, err)

	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := snap.Wrap(ctx, dk)
	require.NoError(t, err)
	got, err := snap.Unwrap(ctx, snap.KeyID(), wrapped)
	require.NoError(t, err)
	require.Equal(t, dk, got)

	for name, tr := range map[string]*Transit{"without associated data": plainT, "with another": otherAD} {
		_, err := tr.Unwrap(ctx, snap.KeyID(), wrapped)
		require.ErrorIs(t, err, keys.ErrWrongKey, name)
		require.ErrorContains(t, err, "cannot decrypt the wrapped key", name)
	}
	wrappedPlain, err := plainT.Wrap(ctx, dk)
	require.NoError(t, err)
	_, err = snap.Unwrap(ctx, snap.KeyID(), wrappedPlain)
	require.ErrorIs(t, err, keys.ErrWrongKey)

	_, _, err = snap.Rewrap(ctx, snap.KeyID(), wrapped)
	require.ErrorContains(t, err, "does not rewrap")
	_, _, _, err = snap.DataKey(ctx)
	require.ErrorContains(t, err, "makes no data keys")

	rsa := "rsa-" + newTransitKey(t)
	_, err = admin(t).Logical().Write("transit/keys/"+rsa, map[string]any{"type": "rsa-2048"})
	require.NoError(t, err)
	tr, err := c.TransitFor(rsa, []byte("purpose one"))
	require.NoError(t, err)
	err = tr.Refresh(ctx)
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "of type rsa-2048 cannot bind associated data: use an aes256-gcm96 key")

	for _, bad := range []string{"", "a/b", "a:b", "a b"} {
		_, err := c.TransitFor(bad, nil)
		require.ErrorIs(t, err, ErrInvalid, bad)
	}
}
