package labels

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSelector(t *testing.T) {
	node := map[string]string{"env": "prod", "region": "eu-west", "canary": ""}
	for _, tc := range []struct {
		sel  string
		want bool
	}{
		{"", true},
		{"env=prod", true},
		{"env=staging", false},
		{"env!=staging", true},
		{"env!=prod", false},
		{"missing!=x", true},
		{"canary", true},
		{"!canary", false},
		{"!missing", true},
		{"env=prod, region=eu-west", true},
		{"env=prod,region=us", false},
	} {
		t.Run(tc.sel, func(t *testing.T) {
			s, err := ParseSelector(tc.sel)
			require.NoError(t, err)
			require.Equal(t, tc.want, s.Matches(node))
		})
	}
}

func TestSelectorRejects(t *testing.T) {
	for _, in := range []string{"=x", "Env=prod", "env=a b", "env==x", ",", "env=prod,", "!", "a=b=c", "-x"} {
		t.Run(in, func(t *testing.T) {
			_, err := ParseSelector(in)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func TestParsePairs(t *testing.T) {
	m, err := ParsePairs([]string{"env=prod", "tier="})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"env": "prod", "tier": ""}, m)
	for _, bad := range [][]string{{"env"}, {"env=a", "env=b"}, {"Env=a"}, {"env=a,b"}} {
		_, err := ParsePairs(bad)
		require.ErrorIs(t, err, ErrInvalid, "%v", bad)
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"", "env=prod", "a!=b,!c,d", "x/y.z=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", sel.String(), s, err)
		}
		if again.String() != sel.String() {
			t.Fatalf("round trip changed %q to %q", sel.String(), again.String())
		}
	})
}
