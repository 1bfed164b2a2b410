package artifact

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func validHeader() Header {
	h := Header{
		Version:     FormatVersion,
		Kind:        KindPostgres,
		Node:        "node-1.example",
		Created:     time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Compression: Compression,
		Cipher:      Cipher,
		KeyID:       "local:1a2b3c4d",
		WrappedKey:  bytes.Repeat([]byte{0xab}, 61),
		FileName:    "postgres_20250102_030405.dump",
	}
	h.keyCheck = keyCheck(bytes.Repeat([]byte{7}, 32))
	return h
}

func TestHeaderRoundTrip(t *testing.T) {
	h := validHeader()
	raw, aadLen, err := h.encode()
	require.NoError(t, err)
	require.Equal(t, Magic, string(raw[:6]))
	require.Equal(t, byte(FormatVersion), raw[6])

	r := bytes.NewReader(append(bytes.Clone(raw), "body"...))
	got, aad, err := readHeader(r)
	require.NoError(t, err)
	require.Equal(t, h, got)
	require.Equal(t, raw[:aadLen], aad)
	require.Equal(t, 4, r.Len(), "reads exactly the header")
}

// section rebuilds a header with its bound or key section replaced.
func withSection(t *testing.T, bound, keySec []byte) []byte {
	t.Helper()
	h := validHeader()
	raw, aadLen, err := h.encode()
	require.NoError(t, err)
	if bound == nil {
		bound = raw[prefixLen:aadLen]
	}
	if keySec == nil {
		keySec = raw[aadLen+2:]
	}
	out := append([]byte(Magic), FormatVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(len(bound))) //nolint:gosec // test
	out = append(out, bound...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(keySec))) //nolint:gosec // test
	return append(out, keySec...)
}

func boundOf(t *testing.T, mutate func(*Header)) []byte {
	t.Helper()
	h := validHeader()
	mutate(&h)
	var b []byte
	b = appendStr8(b, string(h.Kind))
	b = appendStr8(b, h.Node)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Created.UnixNano())) //nolint:gosec // test
	b = appendStr8(b, h.Compression)
	b = appendStr8(b, h.Cipher)
	b = appendStr8(b, h.FileName)
	return append(b, h.keyCheck[:]...)
}

func TestReadHeaderRefuses(t *testing.T) {
	good, _, err := func() ([]byte, int, error) { h := validHeader(); return h.encode() }()
	require.NoError(t, err)
	tests := []struct {
		name string
		raw  []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrTruncated, "inside the header"},
		{"short prefix", good[:5], ErrTruncated, "inside the header"},
		{"short bound", good[:20], ErrTruncated, "inside the header"},
		{"short key section", good[:len(good)-1], ErrTruncated, "inside the header"},
		{"bad magic", append([]byte("FLKBAQ"), good[6:]...), ErrCorrupted, "not a Forlock backup artifact"},
		{"version 2", append([]byte("FLKBAK\x02"), good[7:]...), ErrCorrupted, "version 2 not supported"},
		{"bound too large", append([]byte("FLKBAK\x01\xff\xff"), good[9:]...), ErrCorrupted, "at most 2048"},
		{"unknown kind", withSection(t, boundOf(t, func(h *Header) { h.Kind = "mysql" }), nil), ErrCorrupted, `kind "mysql"`},
		{"bad node", withSection(t, boundOf(t, func(h *Header) { h.Node = "Node_1" }), nil), ErrCorrupted, "node name"},
		{"gzip", withSection(t, boundOf(t, func(h *Header) { h.Compression = "gzip" }), nil), ErrCorrupted, `compression "gzip"`},
		{"other cipher", withSection(t, boundOf(t, func(h *Header) { h.Cipher = "AES128_GCM_HKDF_4KB" }), nil), ErrCorrupted, "cipher"},
		{"path traversal", withSection(t, boundOf(t, func(h *Header) { h.FileName = "../../etc/passwd" }), nil), ErrCorrupted, "file name"},
		{"slash", withSection(t, boundOf(t, func(h *Header) { h.FileName = "a/b" }), nil), ErrCorrupted, "only A-Z"},
		{"negative time", withSection(t, boundOf(t, func(h *Header) { h.Created = time.Unix(-1, 0) }), nil), ErrCorrupted, "before 1970"},
		{"trailing bound byte", withSection(t, append(boundOf(t, func(*Header) {}), 0), nil), ErrCorrupted, "1 unexpected bytes"},
		{"missing key check", withSection(t, boundOf(t, func(*Header) {})[:100], nil), ErrCorrupted, "key check"},
		{"empty key section", withSection(t, nil, []byte{}), ErrCorrupted, "key ID length"},
		{"empty wrapped key", withSection(t, nil, append(appendStr8(nil, "local:1"), 0, 0)), ErrCorrupted, "wrapped key of 0 bytes"},
		{"wrapped key overruns", withSection(t, nil, append(appendStr8(nil, "local:1"), 0, 9, 1)), ErrCorrupted, "9 bytes needed"},
		{"key ID with space", withSection(t, nil, append(appendStr8(nil, "local 1"), 0, 1, 1)), ErrCorrupted, "printable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadHeader(bytes.NewReader(tt.raw))
			require.ErrorIs(t, err, tt.want)
			require.ErrorContains(t, err, tt.msg)
		})
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	for name, mutate := range map[string]func(*Header){
		"no kind":        func(h *Header) { h.Kind = "" },
		"no node":        func(h *Header) { h.Node = "" },
		"zero time":      func(h *Header) { h.Created = time.Time{} },
		"dot file":       func(h *Header) { h.FileName = ".env" },
		"long name":      func(h *Header) { h.FileName = string(bytes.Repeat([]byte{'a'}, MaxFileNameLen+1)) },
		"no key ID":      func(h *Header) { h.KeyID = "" },
		"huge wrapped":   func(h *Header) { h.WrappedKey = make([]byte, MaxWrappedKeyLen+1) },
		"future version": func(h *Header) { h.Version = 2 },
	} {
		t.Run(name, func(t *testing.T) {
			h := validHeader()
			mutate(&h)
			_, _, err := h.encode()
			require.Error(t, err)
		})
	}
}

func FuzzReadHeader(f *testing.F) {
	h := validHeader()
	good, _, err := h.encode()
	require.NoError(f, err)
	f.Add(good)
	f.Add(good[:30])
	f.Add([]byte("FLKBAK\x01\x00\x00\x00\x00"))
	h.Kind, h.Node, h.FileName, h.KeyID = KindConfig, "a", "config_x.tar", "vault-transit:forlock:v12"
	other, _, err := h.encode()
	require.NoError(f, err)
	f.Add(other)

	f.Fuzz(func(t *testing.T, raw []byte) {
		r := bytes.NewReader(raw)
		h, aad, err := readHeader(r)
		if err != nil {
			return
		}
		consumed := len(raw) - r.Len()
		require.LessOrEqual(t, consumed, prefixLen+2+2*MaxSectionLen)
		// The encoding is canonical: a header that parses encodes to the
		// very bytes it was read from.
		again, aadLen, err := h.encode()
		require.NoError(t, err)
		require.Equal(t, raw[:consumed], again)
		require.Equal(t, again[:aadLen], aad)
	})
}
