package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/forlock/fleet/internal/keys"
	"github.com/hashicorp/vault/api"
)

// TransitKeyIDPrefix starts the key ID of every data key wrapped by Transit:
// vault-transit:<key>:v<version>.
const TransitKeyIDPrefix = keys.TransitKeyIDPrefix

// Transit wraps backup data keys with a Vault Transit key: a keys.Wrapper
// whose key-encryption key never leaves Vault.
//
// Wrap sends the plain data key to transit/encrypt (the caller makes the
// data key, as with a local key file, so both wrappers share one code path;
// DataKey uses transit/datakey/plaintext instead). The wrapped key is
// Transit's ciphertext as text, "vault:v<n>:<base64>", about 90 bytes; the
// version inside it is what Vault decrypts with.
//
// KeyID names the latest version this Transit has seen: read at start, and
// raised whenever Wrap, DataKey or Rewrap gets a newer version back, so a
// rotation in Vault shows in the next key ID without polling (Refresh reads
// it on demand). Since keys.Wrapper asks for KeyID separately from Wrap, a
// rotation between the two calls can pair a v<n> ciphertext with key ID
// v<n+1>; Unwrap therefore decrypts by the ciphertext's own version and
// uses the key ID only for the key name.
//
// After the key rotates, old wrapped keys still unwrap (as long as Vault's
// min_decryption_version allows), and Rewrap moves one to the latest version
// without the plain key leaving Vault.
type Transit struct {
	c     *Client
	mount string
	key   string
	// aad, when set, is Transit's associated_data of every wrap and unwrap.
	aad []byte

	mu      sync.Mutex
	version int
}

var _ keys.Wrapper = (*Transit)(nil)

// Transit returns the wrapper for the Transit key TransitKey. It reads the
// key's latest version, and fails if the key is missing or cannot encrypt.
// The token needs: read on <mount>/keys/<key>, update on <mount>/encrypt/<key>,
// <mount>/decrypt/<key>, <mount>/rewrap/<key> and, for DataKey,
// <mount>/datakey/plaintext/<key>.
func (c *Client) Transit(ctx context.Context) (*Transit, error) {
	if c.cfg.TransitKey == "" {
		return nil, fmt.Errorf("vault transit: no transit key set: %w", ErrNotConfigured)
	}
	t, err := c.TransitFor(c.cfg.TransitKey, nil)
	if err != nil {
		return nil, err
	}
	if err := t.Refresh(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// aeadKeyTypes are the Transit key types that authenticate associated data.
var aeadKeyTypes = []string{"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "xchacha20-poly1305"}

// TransitFor returns a wrapper for the Transit key name on TransitMount,
// making no request: Refresh checks that the key exists and can encrypt
// (read on <mount>/keys/<name>), and Unwrap alone needs only update on
// <mount>/decrypt/<name>.
//
// With associatedData, every key it wraps is bound to it (Transit's
// associated_data, which an AEAD key authenticates): a key wrapped under
// one associated data never unwraps under another, so what was wrapped for
// one purpose (a control-plane snapshot) cannot pass for another (a
// backup) through the same Transit key. Such a Transit neither rewraps nor
// makes data keys, and Refresh refuses a key type that is not an AEAD.
func (c *Client) TransitFor(name string, associatedData []byte) (*Transit, error) {
	if name == "" || strings.ContainsAny(name, "/:?#% \t\n") {
		return nil, fmt.Errorf("vault transit key %q: give the key's name, one path segment without ':' or spaces: %w", name, ErrInvalid)
	}
	return &Transit{c: c, mount: c.cfg.TransitMount, key: name, aad: associatedData}, nil
}

// Refresh reads the key's latest version from Vault.
func (t *Transit) Refresh(ctx context.Context) error {
	path := t.mount + "/keys/" + t.key
	s, err := t.c.api.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return t.c.classify("read", path, err)
	}
	if s == nil || s.Data == nil {
		return &vaultError{
			msg:  fmt.Sprintf("read %s: vault at %s has no transit key %q: create it (vault write -f %s type=aes256-gcm96)", path, t.c.cfg.Address, t.key, path),
			kind: ErrNotFound,
		}
	}
	if enc, ok := s.Data["supports_encryption"].(bool); ok && !enc {
		return fmt.Errorf("read %s: transit key %q of type %v cannot encrypt: use an aes256-gcm96 key: %w", path, t.key, s.Data["type"], ErrInvalid)
	}
	if typ, _ := s.Data["type"].(string); t.aad != nil && !slices.Contains(aeadKeyTypes, typ) {
		return fmt.Errorf("read %s: transit key %q of type %s cannot bind associated data: use an aes256-gcm96 key: %w", path, t.key, typ, ErrInvalid)
	}
	v, err := intField(s.Data["latest_version"])
	if err != nil || v < 1 {
		return fmt.Errorf("read %s: latest_version %v: %w", path, s.Data["latest_version"], ErrInvalid)
	}
	t.seen(v)
	return nil
}

// KeyID names the key that Wrap uses now: vault-transit:<key>:v<n>.
func (t *Transit) KeyID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return transitKeyID(t.key, t.version)
}

// seen raises the cached latest version to v.
func (t *Transit) seen(v int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.version = max(t.version, v)
}

// Wrap encrypts a plain data key with the latest version of the key.
func (t *Transit) Wrap(ctx context.Context, plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return nil, errors.New("vault transit wrap: empty data key")
	}
	path := t.mount + "/encrypt/" + t.key
	s, err := t.c.api.Logical().WriteWithContext(ctx, path, t.request("plaintext", base64.StdEncoding.EncodeToString(plain)))
	if err != nil {
		return nil, t.c.classify("update", path, err)
	}
	ct, err := t.ciphertext(path, s)
	if err != nil {
		return nil, err
	}
	return []byte(ct), nil
}

// DataKey has Vault make a fresh 256-bit data key and returns it plain and
// wrapped, with the key ID that wrapped it (which, unlike KeyID after Wrap,
// cannot race with a rotation).
func (t *Transit) DataKey(ctx context.Context) (plain, wrapped []byte, keyID string, err error) {
	if t.aad != nil {
		return nil, nil, "", errors.New("vault transit: a Transit with associated data makes no data keys: use Wrap")
	}
	path := t.mount + "/datakey/plaintext/" + t.key
	s, err := t.c.api.Logical().WriteWithContext(ctx, path, map[string]any{"bits": keys.DataKeySize * 8})
	if err != nil {
		return nil, nil, "", t.c.classify("update", path, err)
	}
	ct, err := t.ciphertext(path, s)
	if err != nil {
		return nil, nil, "", err
	}
	p, _ := s.Data["plaintext"].(string)
	plain, err = base64.StdEncoding.DecodeString(p)
	if err != nil || len(plain) != keys.DataKeySize {
		return nil, nil, "", fmt.Errorf("update %s: vault returned no %d-byte data key: %w", path, keys.DataKeySize, ErrInvalid)
	}
	v, _ := ciphertextVersion(ct)
	return plain, []byte(ct), transitKeyID(t.key, v), nil
}

// ciphertext takes the ciphertext out of an encrypt, datakey or rewrap
// answer and records its version.
func (t *Transit) ciphertext(path string, s *api.Secret) (string, error) {
	if s == nil || s.Data == nil {
		return "", fmt.Errorf("update %s: vault returned no data: %w", path, ErrInvalid)
	}
	ct, _ := s.Data["ciphertext"].(string)
	v, err := ciphertextVersion(ct)
	if err != nil {
		return "", fmt.Errorf("update %s: %w: %w", path, err, ErrInvalid)
	}
	t.seen(v)
	return ct, nil
}

// Unwrap decrypts a data key wrapped by the Transit key that keyID names
// (any key on this mount, so backups wrapped before TransitKey changed still
// restore). It fails with keys.ErrUnknownKey when keyID is not a Transit key
// ID or Vault does not hold the key or version, and with keys.ErrWrongKey when
// the wrapped key is malformed or does not authenticate.
func (t *Transit) Unwrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, error) {
	name, _, err := parseTransitKeyID(keyID)
	if err != nil {
		return nil, fmt.Errorf("vault transit unwrap: %w", err)
	}
	if _, err := ciphertextVersion(string(wrapped)); err != nil {
		return nil, fmt.Errorf("vault transit unwrap with %s: %w: %w", keyID, err, keys.ErrWrongKey)
	}
	path := t.mount + "/decrypt/" + name
	s, err := t.c.api.Logical().WriteWithContext(ctx, path, t.request("ciphertext", string(wrapped)))
	if err != nil {
		return nil, t.transitError("update", path, keyID, err)
	}
	var p string
	if s != nil && s.Data != nil {
		p, _ = s.Data["plaintext"].(string)
	}
	plain, err := base64.StdEncoding.DecodeString(p)
	if err != nil || len(plain) == 0 {
		return nil, fmt.Errorf("update %s: vault returned no plaintext: %w", path, ErrInvalid)
	}
	return plain, nil
}

// Rewrap moves a wrapped data key to the latest version of the Transit key
// that keyID names, inside Vault, and returns the new key ID and wrapped key.
// A key already at the latest version comes back re-encrypted under it.
func (t *Transit) Rewrap(ctx context.Context, keyID string, wrapped []byte) (string, []byte, error) {
	if t.aad != nil {
		return "", nil, errors.New("vault transit: a Transit with associated data does not rewrap: unwrap and wrap again")
	}
	name, _, err := parseTransitKeyID(keyID)
	if err != nil {
		return "", nil, fmt.Errorf("vault transit rewrap: %w", err)
	}
	if _, err := ciphertextVersion(string(wrapped)); err != nil {
		return "", nil, fmt.Errorf("vault transit rewrap of %s: %w: %w", keyID, err, keys.ErrWrongKey)
	}
	path := t.mount + "/rewrap/" + name
	s, err := t.c.api.Logical().WriteWithContext(ctx, path, map[string]any{"ciphertext": string(wrapped)})
	if err != nil {
		return "", nil, t.transitError("update", path, keyID, err)
	}
	if s == nil || s.Data == nil {
		return "", nil, fmt.Errorf("update %s: vault returned no data: %w", path, ErrInvalid)
	}
	ct, _ := s.Data["ciphertext"].(string)
	v, err := ciphertextVersion(ct)
	if err != nil {
		return "", nil, fmt.Errorf("update %s: %w: %w", path, err, ErrInvalid)
	}
	if name == t.key {
		t.seen(v)
	}
	return transitKeyID(name, v), []byte(ct), nil
}

// transitError maps Transit's refusals of a ciphertext (HTTP 400) to the
// keys package's errors; everything else goes through classify.
func (t *Transit) transitError(op, path, keyID string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == 400 {
		msg := details(re.Errors)
		switch {
		case mentions(re.Errors, "key not found"):
			return &vaultError{
				msg:  fmt.Sprintf("%s %s: vault at %s has no transit key for %s: restore the key in Vault or use the control plane that made this backup", op, path, t.c.cfg.Address, keyID),
				kind: keys.ErrUnknownKey, cause: err,
			}
		case mentions(re.Errors, "too new"), mentions(re.Errors, "too old"):
			return &vaultError{
				msg:  fmt.Sprintf("%s %s: vault at %s does not hold that version of %s (%s): check the key's min_decryption_version", op, path, t.c.cfg.Address, keyID, msg),
				kind: keys.ErrUnknownKey, cause: err,
			}
		default:
			return &vaultError{
				msg:  fmt.Sprintf("%s %s: vault at %s cannot decrypt the wrapped key of %s (%s): it is damaged or was wrapped by another key", op, path, t.c.cfg.Address, keyID, msg),
				kind: keys.ErrWrongKey, cause: err,
			}
		}
	}
	return t.c.classify(op, path, err)
}

// request is the body of an encrypt or decrypt call: field and value, and
// the associated data if any.
func (t *Transit) request(field, value string) map[string]any {
	req := map[string]any{field: value}
	if t.aad != nil {
		req["associated_data"] = base64.StdEncoding.EncodeToString(t.aad)
	}
	return req
}

func transitKeyID(name string, version int) string {
	return fmt.Sprintf("%s%s:v%d", TransitKeyIDPrefix, name, version)
}

// parseTransitKeyID splits vault-transit:<key>:v<n>.
func parseTransitKeyID(id string) (string, int, error) {
	rest, ok := strings.CutPrefix(id, TransitKeyIDPrefix)
	name, ver, ok2 := strings.Cut(rest, ":v")
	if !ok || !ok2 || name == "" || strings.ContainsAny(name, "/:") {
		return "", 0, fmt.Errorf("key ID %q is not a vault transit key ID (%s<key>:v<n>): %w", id, TransitKeyIDPrefix, keys.ErrUnknownKey)
	}
	v, err := strconv.Atoi(ver)
	if err != nil || v < 1 {
		return "", 0, fmt.Errorf("key ID %q has no valid version: %w", id, keys.ErrUnknownKey)
	}
	return name, v, nil
}

// ciphertextVersion reads n from a Transit ciphertext "vault:v<n>:<base64>".
func ciphertextVersion(ct string) (int, error) {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	ver, body, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || body == "" {
		return 0, errors.New("not a vault transit ciphertext (vault:v<n>:...)")
	}
	v, err := strconv.Atoi(ver)
	if err != nil || v < 1 {
		return 0, errors.New("vault transit ciphertext with an invalid version")
	}
	return v, nil
}

// intField reads a JSON number field of a Vault answer.
func intField(v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	case float64:
		return int(n), nil
	case int:
		return n, nil
	}
	return 0, fmt.Errorf("not a number: %T", v)
}
