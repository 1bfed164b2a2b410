package tokens

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewAndParse(t *testing.T) {
	tok, err := NewJoin()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tok.Secret, JoinPrefix))
	require.Len(t, tok.ID, 12)
	got, err := ParseJoin(tok.Secret)
	require.NoError(t, err)
	require.Equal(t, tok.ID, got.ID)
	require.True(t, Equal(tok.Hash, got.Hash))

	other, err := NewJoin()
	require.NoError(t, err)
	require.NotEqual(t, tok.Secret, other.Secret)
	require.False(t, Equal(tok.Hash, other.Hash))
}

func TestParseRejects(t *testing.T) {
	admin, err := NewAdmin()
	require.NoError(t, err)
	join, err := NewJoin()
	require.NoError(t, err)
	for name, in := range map[string]string{
		"empty":         "",
		"no prefix":     strings.TrimPrefix(join.Secret, JoinPrefix),
		"admin as join": admin.Secret,
		"short":         join.Secret[:len(join.Secret)-1],
		"long":          join.Secret + "A",
		"bad alphabet":  join.Secret[:len(join.Secret)-1] + "+",
		"whitespace":    " " + join.Secret,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseJoin(in)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func FuzzParseJoin(f *testing.F) {
	tok, _ := NewJoin()
	f.Add(tok.Secret)
	f.Add("fjt_")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseJoin(s)
		if err != nil {
			return
		}
		if got.Secret != s || len(got.ID) != 12 || len(got.Hash) != 32 {
			t.Fatalf("accepted %q with bad result %+v", s, got)
		}
	})
}
