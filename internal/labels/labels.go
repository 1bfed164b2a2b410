// Package labels validates node labels and parses and matches label
// selectors. It is shared by the control plane, which enforces the rules,
// and forlockctl, which checks input before it sends it.
//
// A selector is a comma-separated list of terms, all of which must hold:
//
//	key=value   the node has the label with this value
//	key!=value  the node lacks the label or has another value
//	key         the node has the label
//	!key        the node lacks the label
package labels

import (
	"errors"
	"fmt"
	"strings"
)

// Limits on labels and selectors.
const (
	MaxKeyLen      = 63
	MaxValueLen    = 63
	MaxLabels      = 32
	MaxSelectorLen = 1024
)

// ErrInvalid is wrapped by every validation error of this package.
var ErrInvalid = errors.New("invalid label")

// ValidateKey checks a label key: 1-63 characters, lower-case letters,
// digits, '.', '_', '-' and '/', starting and ending with a letter or digit.
func ValidateKey(k string) error {
	if k == "" || len(k) > MaxKeyLen {
		return fmt.Errorf("%w: key %q must be 1 to %d characters", ErrInvalid, k, MaxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || i == len(k)-1 || !strings.ContainsRune("._-/", rune(c))) {
			return fmt.Errorf("%w: key %q: use lower-case letters, digits and . _ - / (not first or last)", ErrInvalid, k)
		}
	}
	return nil
}

// ValidateValue checks a label value: up to 63 printable ASCII characters
// other than space, ',', '=' and '!'. The empty value is allowed.
func ValidateValue(v string) error {
	if len(v) > MaxValueLen {
		return fmt.Errorf("%w: value %q longer than %d characters", ErrInvalid, v, MaxValueLen)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c > '~' || c == ',' || c == '=' || c == '!' {
			return fmt.Errorf("%w: value %q: printable characters only, no space, comma, '!' or '='", ErrInvalid, v)
		}
	}
	return nil
}

// Validate checks a whole label set.
func Validate(m map[string]string) error {
	if len(m) > MaxLabels {
		return fmt.Errorf("%w: %d labels, at most %d allowed", ErrInvalid, len(m), MaxLabels)
	}
	for k, v := range m {
		if err := ValidateKey(k); err != nil {
			return err
		}
		if err := ValidateValue(v); err != nil {
			return err
		}
	}
	return nil
}

// ParsePairs parses "k=v" strings (as given by repeated --label flags) into a
// validated label set.
func ParsePairs(pairs []string) (map[string]string, error) {
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q is not key=value", ErrInvalid, p)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%w: key %q given twice", ErrInvalid, k)
		}
		m[k] = v
	}
	if err := Validate(m); err != nil {
		return nil, err
	}
	return m, nil
}
