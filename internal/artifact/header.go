package artifact

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/forlock/fleet/internal/pki"
)

// Header layout, format version 1 (all integers big-endian):
//
//	off    size  field
//	0      6     magic "FLKBAK"
//	6      1     format version, 1
//	7      2     B = length of the bound section, at most MaxSectionLen
//	9      B     bound section (associated data of the body, with bytes 0..8):
//	               u8 n, kind         "postgres" | "redis" | "config" | "wal" | "snapshot"
//	               u8 n, node name    as pki.ValidateNodeName
//	               8     created      int64 Unix nanoseconds, UTC, ≥ 0
//	               u8 n, compression  "zstd"
//	               u8 n, cipher       "AES256_GCM_HKDF_1MB"
//	               u8 n, file name    one path segment of [A-Za-z0-9._-]
//	               32    key check    HMAC-SHA256(data key, keyCheckLabel)
//	9+B    2     K = length of the key section, at most MaxSectionLen
//	11+B   K     key section (not bound, so a rotation can rewrite it):
//	               u8 n,  key ID      printable ASCII, e.g. "local:1a2b3c4d"
//	               u16 n, wrapped data key, 1..MaxWrappedKeyLen bytes
//	11+B+K       body: Tink streaming AEAD ciphertext (40-byte stream header,
//	             then segments of 1 MiB, the last one shorter)
//
// Every length is checked, every byte of both sections is consumed, and an
// unknown version, kind, compression or cipher is refused.

// Format constants.
const (
	Magic         = "FLKBAK"
	FormatVersion = 1
	// MaxSectionLen bounds each header section, so a header is at most
	// 11+2*MaxSectionLen bytes.
	MaxSectionLen = 2048
	// MaxWrappedKeyLen bounds a wrapped data key (a Vault Transit ciphertext
	// of a 32-byte key is under 100 bytes).
	MaxWrappedKeyLen = 1024
	// MaxFileNameLen bounds the original file name.
	MaxFileNameLen = 200
	// Compression and Cipher are the only algorithms of format version 1.
	Compression = "zstd"
	Cipher      = "AES256_GCM_HKDF_1MB"

	keyCheckLen   = sha256.Size
	keyCheckLabel = "forlock artifact v1 key check"
	prefixLen     = len(Magic) + 1 + 2
)

// Kind is what an artifact holds.
type Kind string

// The kinds of artifact.
const (
	KindPostgres Kind = "postgres" // pg_dump -Fc output
	KindRedis    Kind = "redis"    // dump.rdb
	KindConfig   Kind = "config"   // tar of compose dir, .env and nginx config
	KindWal      Kind = "wal"      // one PostgreSQL WAL segment (or its partial start) or timeline history file
	// KindSnapshot is a control plane's own snapshot: a tar of its
	// database and key files (controlplane/internal/snapshot). Its node
	// name is the control plane's.
	KindSnapshot Kind = "snapshot"
)

// Header describes an artifact. It is stored in clear at the start of the
// artifact and authenticated by the body's encryption.
type Header struct {
	// Version is the format version; ReadHeader sets it, NewWriter accepts 0
	// or FormatVersion.
	Version int
	// Kind is what the artifact holds.
	Kind Kind
	// Node is the name of the node the data came from.
	Node string
	// Created is when the backup started; stored with nanosecond precision in
	// UTC.
	Created time.Time
	// Compression and Cipher name the body's algorithms; NewWriter fills them
	// in when empty.
	Compression string
	Cipher      string
	// KeyID names the key that wrapped the data key, e.g. "local:1a2b3c4d" or
	// "vault-transit:forlock:v2".
	KeyID string
	// WrappedKey is the data key wrapped by KeyID.
	WrappedKey []byte
	// FileName is the original file name, e.g. "postgres_20250102_030405.dump";
	// one path segment, never a path.
	FileName string

	keyCheck [keyCheckLen]byte
}

// ReadHeader reads and checks the header at the start of r, reading exactly
// the header's bytes. Errors wrap ErrTruncated if r ends inside the header and
// ErrCorrupted if the header is malformed.
func ReadHeader(r io.Reader) (Header, error) {
	h, _, err := readHeader(r)
	return h, err
}

// readHeader also returns the associated data of the body.
func readHeader(r io.Reader) (Header, []byte, error) {
	prefix := make([]byte, prefixLen)
	if err := readFull(r, prefix, "header"); err != nil {
		return Header{}, nil, err
	}
	if string(prefix[:len(Magic)]) != Magic {
		return Header{}, nil, fmt.Errorf("%w: not a Forlock backup artifact (no %q magic)", ErrCorrupted, Magic)
	}
	if v := prefix[len(Magic)]; v != FormatVersion {
		return Header{}, nil, fmt.Errorf("%w: header format version %d not supported, this build reads version %d", ErrCorrupted, v, FormatVersion)
	}
	boundLen := int(binary.BigEndian.Uint16(prefix[len(Magic)+1:]))
	if boundLen > MaxSectionLen {
		return Header{}, nil, fmt.Errorf("%w: header section of %d bytes, at most %d allowed", ErrCorrupted, boundLen, MaxSectionLen)
	}
	buf := make([]byte, prefixLen+boundLen+2)
	copy(buf, prefix)
	if err := readFull(r, buf[prefixLen:], "header"); err != nil {
		return Header{}, nil, err
	}
	aad := buf[:prefixLen+boundLen]
	keyLen := int(binary.BigEndian.Uint16(buf[prefixLen+boundLen:]))
	if keyLen > MaxSectionLen {
		return Header{}, nil, fmt.Errorf("%w: header key section of %d bytes, at most %d allowed", ErrCorrupted, keyLen, MaxSectionLen)
	}
	keySec := make([]byte, keyLen)
	if err := readFull(r, keySec, "header"); err != nil {
		return Header{}, nil, err
	}

	h := Header{Version: FormatVersion}
	if err := h.decodeBound(aad[prefixLen:]); err != nil {
		return Header{}, nil, fmt.Errorf("%w: header: %w", ErrCorrupted, err)
	}
	if err := h.decodeKeys(keySec); err != nil {
		return Header{}, nil, fmt.Errorf("%w: header key section: %w", ErrCorrupted, err)
	}
	if err := h.validate(); err != nil {
		return Header{}, nil, fmt.Errorf("%w: header: %w", ErrCorrupted, err)
	}
	return h, aad, nil
}

// readFull reads len(p) bytes, reporting an early end as ErrTruncated.
func readFull(r io.Reader, p []byte, what string) error {
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: ends inside the %s", ErrTruncated, what)
		}
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}

func (h *Header) decodeBound(b []byte) error {
	d := decoder{b: b}
	h.Kind = Kind(d.str8("kind"))
	h.Node = d.str8("node")
	created := int64(d.u64("created")) //nolint:gosec // checked below
	h.Compression = d.str8("compression")
	h.Cipher = d.str8("cipher")
	h.FileName = d.str8("file name")
	copy(h.keyCheck[:], d.bytes(keyCheckLen, "key check"))
	if err := d.end(); err != nil {
		return err
	}
	if created < 0 {
		return fmt.Errorf("created time %d before 1970", created)
	}
	h.Created = time.Unix(0, created).UTC()
	return nil
}

func (h *Header) decodeKeys(b []byte) error {
	d := decoder{b: b}
	h.KeyID = d.str8("key ID")
	n := int(d.u16("wrapped key length"))
	h.WrappedKey = append([]byte(nil), d.bytes(n, "wrapped key")...)
	return d.end()
}

// encode returns the header's bytes and the length of its bound part.
func (h *Header) encode() ([]byte, int, error) {
	if err := h.validate(); err != nil {
		return nil, 0, err
	}
	var bound []byte
	bound = appendStr8(bound, string(h.Kind))
	bound = appendStr8(bound, h.Node)
	bound = binary.BigEndian.AppendUint64(bound, uint64(h.Created.UnixNano())) //nolint:gosec // validate refuses times before 1970
	bound = appendStr8(bound, h.Compression)
	bound = appendStr8(bound, h.Cipher)
	bound = appendStr8(bound, h.FileName)
	bound = append(bound, h.keyCheck[:]...)

	var keySec []byte
	keySec = appendStr8(keySec, h.KeyID)
	keySec = binary.BigEndian.AppendUint16(keySec, uint16(len(h.WrappedKey))) //nolint:gosec // validate bounds it
	keySec = append(keySec, h.WrappedKey...)
	if len(bound) > MaxSectionLen || len(keySec) > MaxSectionLen {
		return nil, 0, errors.New("header too large")
	}

	out := make([]byte, 0, prefixLen+len(bound)+2+len(keySec))
	out = append(out, Magic...)
	out = append(out, FormatVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(len(bound))) //nolint:gosec // bounded above
	out = append(out, bound...)
	aadLen := len(out)
	out = binary.BigEndian.AppendUint16(out, uint16(len(keySec))) //nolint:gosec // bounded above
	out = append(out, keySec...)
	return out, aadLen, nil
}

// validate checks every field; both the writer and the reader use it.
func (h *Header) validate() error {
	if h.Version != FormatVersion {
		return fmt.Errorf("format version %d not supported, want %d", h.Version, FormatVersion)
	}
	switch h.Kind {
	case KindPostgres, KindRedis, KindConfig, KindWal, KindSnapshot:
	default:
		return fmt.Errorf("kind %q: want postgres, redis, config, wal or snapshot", h.Kind)
	}
	if err := pki.ValidateNodeName(h.Node); err != nil {
		return err
	}
	if h.Created.IsZero() || h.Created.Before(time.Unix(0, 0)) || h.Created.Year() > 2200 {
		return fmt.Errorf("created time %s out of range", h.Created)
	}
	if h.Compression != Compression {
		return fmt.Errorf("compression %q not supported, want %q", h.Compression, Compression)
	}
	if h.Cipher != Cipher {
		return fmt.Errorf("cipher %q not supported, want %q", h.Cipher, Cipher)
	}
	if err := validateFileName(h.FileName); err != nil {
		return err
	}
	if h.KeyID == "" || len(h.KeyID) > 255 {
		return fmt.Errorf("key ID of %d bytes: want 1 to 255", len(h.KeyID))
	}
	for i := 0; i < len(h.KeyID); i++ {
		if c := h.KeyID[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("key ID %q: only printable ASCII without spaces allowed", h.KeyID)
		}
	}
	if len(h.WrappedKey) == 0 || len(h.WrappedKey) > MaxWrappedKeyLen {
		return fmt.Errorf("wrapped key of %d bytes: want 1 to %d", len(h.WrappedKey), MaxWrappedKeyLen)
	}
	return nil
}

// validateFileName allows one path segment of [A-Za-z0-9._-] that starts
// with a letter, digit or '_', so a name from a header can never escape the
// directory it is restored into.
func validateFileName(name string) error {
	if name == "" || len(name) > MaxFileNameLen {
		return fmt.Errorf("file name of %d bytes: want 1 to %d", len(name), MaxFileNameLen)
	}
	if c := name[0]; c == '.' || c == '-' {
		return fmt.Errorf("file name %q must start with a letter, digit or '_'", name)
	}
	for i := 0; i < len(name); i++ {
		if !fileNameByte(name[i]) {
			return fmt.Errorf("file name %q: only A-Z a-z 0-9 . _ - allowed", name)
		}
	}
	return nil
}

func fileNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// keyCheck returns the key check value of a data key: it tells a wrong key
// from a corrupted body without revealing anything about the key.
func keyCheck(dataKey []byte) [keyCheckLen]byte {
	m := hmac.New(sha256.New, dataKey)
	m.Write([]byte(keyCheckLabel))
	var out [keyCheckLen]byte
	copy(out[:], m.Sum(nil))
	return out
}

func appendStr8(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...) //nolint:gosec // validate bounds every string to 255 bytes
}

// decoder reads fields from a section, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%s: %d bytes needed, %d left", what, n, len(d.b))
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) str8(what string) string {
	n := d.bytes(1, what+" length")
	if n == nil {
		return ""
	}
	s := d.bytes(int(n[0]), what)
	if d.err == nil && !utf8.Valid(s) {
		d.err = fmt.Errorf("%s: not UTF-8", what)
	}
	return string(s)
}

func (d *decoder) u16(what string) uint16 {
	b := d.bytes(2, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (d *decoder) u64(what string) uint64 {
	b := d.bytes(8, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (d *decoder) end() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d unexpected bytes at the end", len(d.b))
	}
	return nil
}
