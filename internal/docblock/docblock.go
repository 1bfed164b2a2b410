// Package docblock keeps a generated block of a Markdown document in step
// with the code it is generated from: a test renders the block from the
// code's own table (the settings of a daemon, the rule of every RPC) and
// fails when the document says something else, so a table in docs/ cannot
// drift from what the binaries do. With the test's -update flag it writes
// the block instead.
//
// A block sits between two HTML comments, which Markdown does not show:
//
//	<!-- NAME -->
//	...generated...
//	<!-- /NAME -->
package docblock

import (
	"bytes"
	"fmt"
	"os"
)

// Sync checks that the file at path holds want between the lines
// "<!-- name -->" and "<!-- /name -->"; with update it writes want there
// instead. test names the test to run with -update, for the error.
func Sync(path, name, want string, update bool, test string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := fmt.Sprintf("<!-- %s -->\n", name), fmt.Sprintf("<!-- /%s -->", name)
	i, j := bytes.Index(data, []byte(begin)), bytes.Index(data, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q ... %q section", path, bytes.TrimSpace([]byte(begin)), end)
	}
	i += len(begin)
	if string(data[i:j]) == want {
		return nil
	}
	if !update {
		return fmt.Errorf("%s: the %s block is not the one the code declares: run go test -run %s -update", path, name, test)
	}
	out := append(append(append([]byte{}, data[:i]...), want...), data[j:]...)
	return os.WriteFile(path, out, 0o644) //nolint:gosec // a doc in the repository
}
