package labels

import (
	"fmt"
	"strings"
)

type op int

const (
	opEq op = iota
	opNotEq
	opExists
	opNotExists
)

type term struct {
	key, value string
	op         op
}

// Selector matches label sets. The zero Selector matches everything.
type Selector struct {
	terms []term
}

// ParseSelector parses a selector; the empty string selects everything.
func ParseSelector(s string) (Selector, error) {
	if len(s) > MaxSelectorLen {
		return Selector{}, fmt.Errorf("%w: selector longer than %d characters", ErrInvalid, MaxSelectorLen)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return Selector{}, nil
	}
	var sel Selector
	for _, raw := range strings.Split(s, ",") {
		t, err := parseTerm(strings.TrimSpace(raw))
		if err != nil {
			return Selector{}, fmt.Errorf("selector %q: %w", s, err)
		}
		sel.terms = append(sel.terms, t)
	}
	return sel, nil
}

func parseTerm(s string) (term, error) {
	var t term
	switch {
	case strings.Contains(s, "!="):
		t.key, t.value, _ = strings.Cut(s, "!=")
		t.op = opNotEq
	case strings.Contains(s, "="):
		t.key, t.value, _ = strings.Cut(s, "=")
		t.op = opEq
	case strings.HasPrefix(s, "!"):
		t.key, t.op = s[1:], opNotExists
	default:
		t.key, t.op = s, opExists
	}
	t.key = strings.TrimSpace(t.key)
	t.value = strings.TrimSpace(t.value)
	if err := ValidateKey(t.key); err != nil {
		return term{}, fmt.Errorf("term %q: %w (terms are key=value, key!=value, key, !key)", s, err)
	}
	if err := ValidateValue(t.value); err != nil {
		return term{}, fmt.Errorf("term %q: %w", s, err)
	}
	return t, nil
}

// Matches reports whether every term holds for m.
func (s Selector) Matches(m map[string]string) bool {
	for _, t := range s.terms {
		v, ok := m[t.key]
		switch t.op {
		case opEq:
			if !ok || v != t.value {
				return false
			}
		case opNotEq:
			if ok && v == t.value {
				return false
			}
		case opExists:
			if !ok {
				return false
			}
		case opNotExists:
			if ok {
				return false
			}
		}
	}
	return true
}

// String returns the canonical form of the selector.
func (s Selector) String() string {
	parts := make([]string, len(s.terms))
	for i, t := range s.terms {
		switch t.op {
		case opEq:
			parts[i] = t.key + "=" + t.value
		case opNotEq:
			parts[i] = t.key + "!=" + t.value
		case opExists:
			parts[i] = t.key
		case opNotExists:
			parts[i] = "!" + t.key
		}
	}
	return strings.Join(parts, ",")
}
