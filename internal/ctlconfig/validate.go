package ctlconfig

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameLen bounds context names; they are typed on command lines.
const maxNameLen = 63

func (c *Context) validate() error {
	if err := validateName(c.Name); err != nil {
		return err
	}
	if err := ValidateAddress(c.Address); err != nil {
		return err
	}
	if strings.ContainsFunc(c.CAFile, unicode.IsControl) || !utf8.ValidString(c.CAFile) {
		return errors.New("ca-file holds control characters or invalid UTF-8: write a plain file path")
	}
	if strings.ContainsFunc(c.Token, notTokenRune) {
		return errors.New("token holds spaces, control or non-ASCII characters: paste the token exactly as the control plane printed it")
	}
	return nil
}

// validateName accepts letters, digits and ". _ - @", starting with a letter
// or digit, so that names need no quoting in a shell.
func validateName(name string) error {
	if name == "" {
		return errors.New("name is empty: give every context a name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("name is %d characters long: use at most %d", len(name), maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i] // bytes >= 0x80 (non-ASCII) match neither test
		if !isAlnum(c) && (i == 0 || strings.IndexByte("._-@", c) < 0) {
			return fmt.Errorf("name %q: use letters, digits, '.', '_', '-' or '@', starting with a letter or digit", name)
		}
	}
	return nil
}

// ValidateAddress reports whether addr is a usable control plane address:
// host:port with a non-empty host and a port in 1-65535. IPv6 hosts must be
// bracketed, as in "[::1]:7443". Callers that take an address from a flag or
// the environment use it to fail early with the same message as Parse.
func ValidateAddress(addr string) error {
	if addr == "" {
		return errors.New("address is empty: set it to the control plane's host:port")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q is not host:port (for IPv6 write \"[::1]:7443\"): %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host: write host:port", addr)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) ||
		!utf8.ValidString(host) {
		return fmt.Errorf("address %q: host holds spaces, slashes or control characters", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 || strings.HasPrefix(port, "+") {
		return fmt.Errorf("address %q: port must be a number from 1 to 65535", addr)
	}
	return nil
}

func isAlnum(b byte) bool {
	return ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9')
}

// notTokenRune reports runes that cannot appear in an HTTP/2 header value
// after "Bearer ": only visible ASCII is allowed.
func notTokenRune(r rune) bool {
	return r <= ' ' || r >= 0x7f
}

func nameList(cs []Context) string {
	if len(cs) == 0 {
		return "(no contexts defined)"
	}
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}
