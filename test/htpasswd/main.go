// Command htpasswd prints a bcrypt htpasswd line for the test image
// registry (deploy/registry/start.sh), so no apache2-utils is needed:
//
//	printf %s "$password" | go run ./test/htpasswd USER >htpasswd
//
// The password is read from stdin, never from the command line.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "htpasswd:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 1 || args[0] == "" || strings.ContainsAny(args[0], ":\n") {
		return errors.New("usage: htpasswd USER <password on stdin>")
	}
	pw, err := io.ReadAll(bufio.NewReader(io.LimitReader(stdin, 1<<10)))
	if err != nil {
		return fmt.Errorf("read password: %w", err)
	}
	pass := strings.TrimRight(string(pw), "\r\n")
	if pass == "" {
		return errors.New("empty password on stdin")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("bcrypt: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s:%s\n", args[0], hash)
	return err
}
