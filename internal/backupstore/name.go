package backupstore

import (
	"fmt"
	"regexp"
	"strings"
)

// bucketName is S3's rule for bucket names: 3 to 63 lower-case letters,
// digits, '.' and '-', starting and ending with a letter or digit (and no
// "..", checked apart).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ValidateBucket checks an S3 bucket name, and says what to use.
func ValidateBucket(name string) error {
	if !bucketName.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("bucket %q: use 3-63 lower-case letters, digits, '.' and '-'", name)
	}
	return nil
}

// Limits on artifact names. Segments stay under the 255-byte file name limit
// of common file systems; the whole name stays well under S3's 1024-byte key
// limit so a prefix still fits.
const (
	MaxNameLen    = 512
	MaxSegmentLen = 200
)

// ValidateName checks that name is a relative path of one or more segments
// joined by '/', each made of [A-Za-z0-9._-] and starting with a letter,
// digit or '_'. That refuses absolute paths, "." and "..", empty segments
// ("a//b", trailing '/'), hidden files and names that look like flags. The
// error wraps ErrInvalidName and says what is wrong.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes, at most %d allowed", ErrInvalidName, len(name), MaxNameLen)
	}
	if name[0] == '/' {
		return fmt.Errorf("%w %q: absolute path refused, names are relative to the backup destination", ErrInvalidName, name)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if problem := segmentProblem(seg); problem != "" {
			return fmt.Errorf("%w %q: %s", ErrInvalidName, name, problem)
		}
	}
	return nil
}

// segmentProblem says what is wrong with one path segment, or "" if nothing.
func segmentProblem(seg string) string {
	switch {
	case seg == "":
		return "empty path segment"
	case seg == "." || seg == "..":
		return fmt.Sprintf("path traversal refused: %q segment", seg)
	case len(seg) > MaxSegmentLen:
		return fmt.Sprintf("segment of %d bytes, at most %d allowed", len(seg), MaxSegmentLen)
	case seg[0] == '.' || seg[0] == '-':
		return fmt.Sprintf("segment %q must start with a letter, digit or '_'", seg)
	}
	for _, r := range seg {
		if !nameRune(r) {
			return fmt.Sprintf("character %q not allowed, only A-Z a-z 0-9 . _ - and '/' between segments", r)
		}
	}
	return ""
}

func nameRune(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
