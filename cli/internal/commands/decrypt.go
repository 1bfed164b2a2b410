package commands

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/atomicfile"
	"github.com/forlock/fleet/internal/keys"
)

const decryptHelp = `Decrypt a backup artifact file with the control plane's key file, without
the control plane: the disaster-recovery path. No connection settings are
needed or used.

ARTIFACT_FILE is an artifact as 'forlockctl backup' wrote it (e.g.
postgres_20260301_120000.dump.zst.enc, copied from the node's backup
directory or the bucket), or - for standard input. --key-file is the
control plane's <data-dir>/backup-kek.json, or the copy of it you keep apart
from the backups; it must have mode 0600.

The plain data (pg_dump custom format, dump.rdb, or a tar of the config) goes
to standard output, or with -o/--output to OUT. In this command -o names the
output file, not the output format. OUT is written atomically: a temporary
file beside it is renamed to OUT only when the whole artifact decrypted and
authenticated, so OUT is never partial; an existing OUT is replaced. The
plain data is never written to a terminal.

A damaged artifact (changed or truncated bytes) or a wrong key is refused
with a message saying which. Every byte written was authenticated, but on
standard output a damaged artifact may leave a partial prefix: discard it.
See docs/disaster-recovery.md for what to do with the plain data.

Exit codes: 0 decrypted, 1 the artifact is damaged, the key is wrong or a
file could not be read or written, 64 a wrong command line.`

func newDecryptCmd(a *app) *cobra.Command {
	var keyFile, out string
	cmd := &cobra.Command{
		Use:   "decrypt ARTIFACT_FILE --key-file FILE [-o OUT]",
		Short: "Decrypt an artifact file offline with the key file (disaster recovery, no control plane)",
		Long:  decryptHelp,
		Example: `  forlockctl backup decrypt postgres_20260301_120000.dump.zst.enc --key-file backup-kek.json -o forlock.dump
  forlockctl backup decrypt redis_20260301_120000.rdb.zst.enc --key-file backup-kek.json > dump.rdb`,
		Args: exactArg("ARTIFACT_FILE"),
		RunE: func(_ *cobra.Command, args []string) error {
			return a.decrypt(args[0], keyFile, out)
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "the control plane's key file, <data-dir>/backup-kek.json or your copy of it (required)")
	// Shadows the persistent -o/--output (format): here it names a file.
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the plain data to this file, atomically (default: standard output)")
	return cmd
}

func (a *app) decrypt(src, keyFile, out string) error {
	switch {
	case keyFile == "":
		return usageErrorf("--key-file is required: the control plane's <data-dir>/backup-kek.json, or your copy of it")
	case out == outputJSON || out == outputTable:
		return usageErrorf("-o %s: in 'backup decrypt', -o names the output file; to write a file called %s, give -o ./%s", out, out, out)
	case out == "" && isTerminalWriter(a.io.Out):
		return usageErrorf("refusing to write the plain data to a terminal: redirect standard output (> FILE) or give -o FILE")
	}
	// Load the key first: a missing or open key file is reported before
	// any output exists, and its key ID helps explain a wrong key.
	kek, err := keys.LoadFile(keyFile)
	if err != nil {
		return fmt.Errorf("cannot use the key file: %w", err)
	}
	in, name, err := a.openArtifact(src)
	if err != nil {
		return err
	}
	defer in.Close() //nolint:errcheck // read-only
	if out == "" {
		cw := &countWriter{w: a.io.Out}
		h, err := artifact.Decrypt(cw, in, keyFile)
		if err != nil {
			lost := "nothing was written to standard output"
			if cw.n > 0 {
				lost = fmt.Sprintf("%d bytes were already written to standard output: they are partial output, discard them", cw.n)
			}
			return decryptError(err, name, h, kek, lost)
		}
		a.decrypted(h, name, "standard output", cw.n)
		return nil
	}
	if err := refuseSameFile(src, out); err != nil {
		return err
	}
	return a.decryptToFile(in, name, out, keyFile, kek)
}

// openArtifact opens ARTIFACT_FILE, or standard input for "-".
func (a *app) openArtifact(src string) (io.ReadCloser, string, error) {
	if src == "-" {
		return io.NopCloser(a.io.In), "standard input", nil
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, "", fmt.Errorf("open artifact: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		_ = f.Close()
		return nil, "", usageErrorf("%s is a directory: give one artifact file", src)
	}
	return f, src, nil
}

// decryptToFile decrypts into a temporary file beside out (mode 0600: the
// plain data) and puts it in place with atomicfile only on success.
func (a *app) decryptToFile(in io.Reader, name, out, keyFile string, kek *keys.File) error {
	f, err := atomicfile.Create(out, 0o600)
	if err != nil {
		return fmt.Errorf("create the output file: %w", err)
	}
	defer f.Abort() //nolint:errcheck // no-op after Commit; otherwise the partial output goes
	cw := &countWriter{w: f}
	h, err := artifact.Decrypt(cw, in, keyFile)
	if err != nil {
		return decryptError(err, name, h, kek, fmt.Sprintf("%s was not written (the partial output was discarded)", out))
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("%w: %s holds either its old content or the whole new one; run the command again", err, out)
	}
	a.decrypted(h, name, out, cw.n)
	return nil
}

// decrypted tells on stderr what was decrypted, for the operator's next step.
func (a *app) decrypted(h artifact.Header, name, to string, n int64) {
	fmt.Fprintf(a.io.Err, "decrypted %s: %s of node %s taken %s (original file %s), %d bytes to %s\n",
		name, h.Kind, h.Node, h.Created.UTC().Format("2006-01-02 15:04:05Z"), h.FileName, n, to)
}

// decryptError says why an artifact was refused and what became of the
// output.
func decryptError(err error, name string, h artifact.Header, kek *keys.File, output string) error {
	switch {
	case errors.Is(err, artifact.ErrWrongKey):
		return fmt.Errorf("wrong key: %s was encrypted under key %s, and the key file holds key %s; "+
			"use the backup-kek.json of the control plane that made this backup; %s (%w)", name, orDash(h.KeyID), kek.KeyID(), output, err)
	case errors.Is(err, artifact.ErrCorrupted), errors.Is(err, artifact.ErrTruncated):
		return fmt.Errorf("%s is damaged (changed or truncated since it was written) and cannot be trusted; "+
			"use another copy or an older restore point; %s (%w)", name, output, err)
	}
	return fmt.Errorf("decrypt %s: %w; %s", name, err, output)
}

// refuseSameFile keeps -o from replacing the artifact it reads.
func refuseSameFile(src, out string) error {
	if src == "-" {
		return nil
	}
	si, err := os.Stat(src)
	if err != nil {
		return nil //nolint:nilerr // the open of src reports it
	}
	oi, err := os.Stat(out)
	if err != nil {
		return nil //nolint:nilerr // out does not exist yet
	}
	if os.SameFile(si, oi) {
		return usageErrorf("-o %s is the artifact itself: write the plain data to another file", out)
	}
	return nil
}

// isTerminalWriter reports whether w is an interactive terminal.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
