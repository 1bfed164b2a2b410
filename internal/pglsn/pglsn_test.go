package pglsn

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want LSN
		ok   bool
	}{
		{"0/3000000", 0x3000000, true},
		{"1/0", 1 << 32, true},
		{"FFFFFFFF/FFFFFFFF", ^LSN(0), true},
		{"a/b", 0xa<<32 | 0xb, true},
		{"", 0, false},
		{"0/", 0, false},
		{"/1", 0, false},
		{"0/1/2", 0, false},
		{"100000000/0", 0, false},
		{"-1/0", 0, false},
		{"+1/0", 0, false},
		{"0x1/0", 0, false},
		{"g/0", 0, false},
	} {
		got, err := Parse(tc.in)
		if !tc.ok {
			require.ErrorIs(t, err, ErrSyntax, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
		again, err := Parse(got.String())
		require.NoError(t, err)
		require.Equal(t, got, again)
	}
	require.Equal(t, "0/5000000", LSN(0x5000000).String())
}

func FuzzParse(f *testing.F) {
	f.Add("0/3000000")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(l.String())
		if err != nil || again != l {
			t.Fatalf("%q -> %v -> %v, %v", s, l, again, err)
		}
	})
}
