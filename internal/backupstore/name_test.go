package backupstore

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateName(t *testing.T) {
	long := strings.Repeat("a", MaxSegmentLen)
	tests := []struct {
		name    string
		in      string
		wantErr string // "" means valid
	}{
		{"simple", "postgres_20260101_120000.dump.zst.enc", ""},
		{"nested", "node-1/2026/redis_20260101_120000.rdb.zst.enc", ""},
		{"underscore start", "_x", ""},
		{"longest segment", long, ""},
		{"empty", "", "empty"},
		{"parent", "..", `path traversal refused: ".." segment`},
		{"parent prefix", "../etc/passwd", `path traversal refused: ".." segment`},
		{"parent inside", "a/../../b", `path traversal refused: ".." segment`},
		{"dot", "a/./b", `path traversal refused: "." segment`},
		{"absolute", "/etc/passwd", "absolute path refused"},
		{"empty segment", "a//b", "empty path segment"},
		{"trailing slash", "a/", "empty path segment"},
		{"hidden", ".env", `segment ".env" must start with a letter, digit or '_'`},
		{"flag", "-rf", `segment "-rf" must start with a letter, digit or '_'`},
		{"backslash", `a\..\b`, `character '\\' not allowed`},
		{"space", "a b", `character ' ' not allowed`},
		{"nul", "a\x00b", `character '\x00' not allowed`},
		{"unicode", "bäckup", `character 'ä' not allowed`},
		{"segment too long", long + "a", "segment of 201 bytes, at most 200 allowed"},
		{"name too long", strings.Repeat("a/", MaxNameLen/2) + "a", "at most 512 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.in)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidName)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// FuzzValidateName checks that every accepted name stays inside the
// directory it is joined to, and that the validator never panics.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../a", "a/../b", "/a", "a//b", ".a", "a\\b", "a/b/", "..", "a/.", "%2e%2e/x"} {
		f.Add(s)
	}
	const root = "/var/backups/forlock"
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		require.LessOrEqual(t, len(name), MaxNameLen)
		require.True(t, filepath.IsLocal(name), "accepted non-local %q", name)
		require.Equal(t, filepath.Clean(name), name, "accepted unclean %q", name)
		joined := filepath.Join(root, name)
		require.True(t, strings.HasPrefix(joined, root+"/"), "accepted %q escapes to %q", name, joined)
		for seg := range strings.SplitSeq(name, "/") {
			require.NotEmpty(t, seg)
			require.NotEqual(t, '.', rune(seg[0]), "accepted hidden or dot segment in %q", name)
		}
	})
}

func TestValidateBucket(t *testing.T) {
	for _, ok := range []string{"abc", "forlock-backups", "a.b-c", "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopq"[:63]} {
		require.NoError(t, ValidateBucket(ok), ok)
	}
	for _, bad := range []string{"", "ab", "Backups", "fleet_backups", "-abc", "abc-", "a..b", "a/b", strings.Repeat("a", 64)} {
		require.ErrorContains(t, ValidateBucket(bad), "use 3-63 lower-case letters", bad)
	}
}
