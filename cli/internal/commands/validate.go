package commands

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Label rules, as documented on CreateJoinTokenRequest.labels. The server
// checks them too; checking here gives a better message before any call.
const (
	maxLabelLen = 63
	keyRule     = "label keys are 1-63 characters of a-z, 0-9, '.', '_', '/' and '-', starting and ending with a letter or digit"
	valueRule   = "label values are at most 63 printable characters without ',', '=' or '!'"
	selectorUse = "write the selector as comma-separated terms key=value, key!=value, key or !key"
)

func validateLabelKey(k string) error {
	if k == "" || len(k) > maxLabelLen {
		return fmt.Errorf("label key %q: %s", k, keyRule)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		alnum := ('a' <= c && c <= 'z') || ('0' <= c && c <= '9')
		inner := strings.IndexByte("._/-", c) >= 0
		if !alnum && (!inner || i == 0 || i == len(k)-1) {
			return fmt.Errorf("label key %q: %s", k, keyRule)
		}
	}
	return nil
}

func validateLabelValue(k, v string) error {
	ok := utf8.ValidString(v) && utf8.RuneCountInString(v) <= maxLabelLen &&
		!strings.ContainsAny(v, ",=!") &&
		!strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) })
	if !ok {
		return fmt.Errorf("label %q value %q: %s", k, v, valueRule)
	}
	return nil
}

// parseLabels turns repeated --label key=value flags into a map.
func parseLabels(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	labels := make(map[string]string, len(flags))
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, usageErrorf("--label %q: write it as key=value", kv)
		}
		if err := validateLabelKey(k); err != nil {
			return nil, usageErrorf("--label %q: %w", kv, err)
		}
		if err := validateLabelValue(k, v); err != nil {
			return nil, usageErrorf("--label %q: %w", kv, err)
		}
		if _, dup := labels[k]; dup {
			return nil, usageErrorf("--label %q: key %q is given twice: give each key once", kv, k)
		}
		labels[k] = v
	}
	return labels, nil
}

// validateSelector checks label selector syntax: comma-separated terms
// key=value, key!=value, key (has the label) or !key (lacks it).
func validateSelector(sel string) error {
	if sel == "" {
		return nil
	}
	for term := range strings.SplitSeq(sel, ",") {
		if err := validateTerm(term); err != nil {
			return usageErrorf("label selector %q, term %q: %w; %s", sel, term, err, selectorUse)
		}
	}
	return nil
}

func validateTerm(term string) error {
	if term == "" {
		return fmt.Errorf("empty term")
	}
	if k, ok := strings.CutPrefix(term, "!"); ok {
		return validateLabelKey(k)
	}
	k, v, ok := strings.Cut(term, "!=")
	if !ok {
		k, v, ok = strings.Cut(term, "=")
	}
	if err := validateLabelKey(k); err != nil {
		return err
	}
	if ok {
		return validateLabelValue(k, v)
	}
	return nil
}

// stateList is the help text for --state.
const stateList = "online, unreachable, offline, enrolled"

// parseStates turns --state values (each may hold a comma-separated list)
// into node states, without duplicates.
func parseStates(vals []string) ([]forlockv1.NodeState, error) {
	var out []forlockv1.NodeState
	for _, v := range vals {
		for name := range strings.SplitSeq(v, ",") {
			st := stateByName(strings.ToLower(strings.TrimSpace(name)))
			if st == forlockv1.NodeState_NODE_STATE_UNSPECIFIED {
				return nil, usageErrorf("--state %q: unknown state %q: use one or more of %s", v, name, stateList)
			}
			if !slices.Contains(out, st) {
				out = append(out, st)
			}
		}
	}
	return out, nil
}

func stateByName(name string) forlockv1.NodeState {
	switch name {
	case "online":
		return forlockv1.NodeState_NODE_STATE_ONLINE
	case "unreachable":
		return forlockv1.NodeState_NODE_STATE_UNREACHABLE
	case "offline":
		return forlockv1.NodeState_NODE_STATE_OFFLINE
	case "enrolled":
		return forlockv1.NodeState_NODE_STATE_ENROLLED
	}
	return forlockv1.NodeState_NODE_STATE_UNSPECIFIED
}

// stateName is the short name of a node state, as --state accepts it.
func stateName(s forlockv1.NodeState) string {
	switch s {
	case forlockv1.NodeState_NODE_STATE_ONLINE:
		return "online"
	case forlockv1.NodeState_NODE_STATE_UNREACHABLE:
		return "unreachable"
	case forlockv1.NodeState_NODE_STATE_OFFLINE:
		return "offline"
	case forlockv1.NodeState_NODE_STATE_ENROLLED:
		return "enrolled"
	}
	return "unknown"
}
