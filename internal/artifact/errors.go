package artifact

import "errors"

// Errors that say why an artifact was refused; test them with errors.Is.
var (
	// ErrChecksumMismatch means the artifact's bytes do not have the expected
	// SHA-256: it was changed or truncated in storage.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrWrongKey means the data key could not be unwrapped or does not belong
	// to this artifact.
	ErrWrongKey = errors.New("wrong key")
	// ErrCorrupted means the header is malformed or a segment of the body does
	// not authenticate.
	ErrCorrupted = errors.New("artifact corrupted")
	// ErrTruncated means the artifact ends early: inside the header, or the
	// final segment does not authenticate as the end of the stream.
	ErrTruncated = errors.New("artifact truncated")
)
