// Package artifact is the on-disk format of a backup artifact and the
// streaming pipeline that writes and reads it.
//
// An artifact is a header followed by an encrypted body:
//
//	header  magic "FLKBAK", format version, what the artifact is and how its
//	        data key is wrapped (see Header and the layout in header.go)
//	body    source → zstd → Tink streaming AEAD AES256_GCM_HKDF_1MB
//	        (1 MiB segments, each authenticated; the last segment is marked, so
//	        truncation and appended bytes are detected)
//
// Every artifact has its own 32-byte data key. The header's bound section is
// the associated data of the streaming AEAD, so changing any of its bytes
// makes decryption fail. The key section (key ID and wrapped data key) is not
// bound, so a key rotation can rewrap the data key and rewrite the header
// without touching the body; it is protected by the wrap itself and by a key
// check value in the bound section, which also lets Open say "wrong key"
// before it reads the body.
//
// Writing: NewWriter. Reading: Open streams the plaintext; Verify reads a whole
// artifact, checking its SHA-256 and that every segment decrypts, so a restore
// can refuse a damaged artifact or a wrong key before it changes anything.
// Decrypt is the disaster-recovery path with only a local key file.
// Memory stays bounded by a few segments and the zstd window whatever the size.
package artifact
