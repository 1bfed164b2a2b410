package commands

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    map[string]string
		wantErr string
	}{
		{name: "none", in: nil, want: nil},
		{name: "several", in: []string{"env=prod", "rack/row=4", "empty="}, want: map[string]string{"env": "prod", "rack/row": "4", "empty": ""}},
		{name: "value with spaces", in: []string{"site=Berlin Mitte"}, want: map[string]string{"site": "Berlin Mitte"}},
		{name: "no equals", in: []string{"env"}, wantErr: `--label "env": write it as key=value`},
		{name: "upper-case key", in: []string{"Env=prod"}, wantErr: `label key "Env": label keys are 1-63 characters`},
		{name: "key ends with dash", in: []string{"env-=prod"}, wantErr: "starting and ending with a letter or digit"},
		{name: "empty key", in: []string{"=prod"}, wantErr: `label key ""`},
		{name: "long key", in: []string{strings.Repeat("k", 64) + "=v"}, wantErr: "1-63 characters"},
		{name: "value with bang", in: []string{"env=pr!od"}, wantErr: `label "env" value "pr!od": label values are at most 63 printable characters without ',', '=' or '!'`},
		{name: "value with equals", in: []string{"env=a=b"}, wantErr: "without ',', '=' or '!'"},
		{name: "value with comma", in: []string{"env=a,b"}, wantErr: "without ',', '=' or '!'"},
		{name: "value with control", in: []string{"env=a\tb"}, wantErr: "printable"},
		{name: "long value", in: []string{"env=" + strings.Repeat("v", 64)}, wantErr: "at most 63"},
		{name: "duplicate key", in: []string{"env=a", "env=b"}, wantErr: `key "env" is given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLabels(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				var ue *usageError
				require.ErrorAs(t, err, &ue, "local validation is a usage error")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestValidateSelector(t *testing.T) {
	tests := []struct {
		sel     string
		wantErr string
	}{
		{sel: ""},
		{sel: "env=prod"},
		{sel: "env!=prod"},
		{sel: "env"},
		{sel: "!canary"},
		{sel: "env=prod,!canary,region!=eu,rack"},
		{sel: "env=", wantErr: ""},
		{sel: "env=prod,", wantErr: `term "": empty term`},
		{sel: ",env", wantErr: "empty term"},
		{sel: "env==prod", wantErr: `value "=prod"`},
		{sel: "!env=prod", wantErr: `label key "env=prod"`},
		{sel: "Env=prod", wantErr: `label key "Env"`},
		{sel: "env=prod env2=x", wantErr: "value \"prod env2=x\""},
		{sel: "!", wantErr: `label key ""`},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			err := validateSelector(tt.sel)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.ErrorContains(t, err, "write the selector as comma-separated terms key=value, key!=value, key or !key")
		})
	}
}

func TestParseStates(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []forlockv1.NodeState
		wantErr string
	}{
		{name: "none", in: nil, want: nil},
		{name: "list in one flag", in: []string{"online,Unreachable"}, want: []forlockv1.NodeState{
			forlockv1.NodeState_NODE_STATE_ONLINE, forlockv1.NodeState_NODE_STATE_UNREACHABLE,
		}},
		{name: "repeated and duplicated", in: []string{"offline", "enrolled", "offline"}, want: []forlockv1.NodeState{
			forlockv1.NodeState_NODE_STATE_OFFLINE, forlockv1.NodeState_NODE_STATE_ENROLLED,
		}},
		{name: "unknown", in: []string{"online,up"}, wantErr: `unknown state "up": use one or more of online, unreachable, offline, enrolled`},
		{name: "empty item", in: []string{"online,"}, wantErr: `unknown state ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStates(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			for _, s := range got {
				require.Equal(t, s, stateByName(stateName(s)), "names round-trip")
			}
		})
	}
}
