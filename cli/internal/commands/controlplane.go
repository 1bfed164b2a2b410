package commands

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/forlock/fleet/internal/atomicfile"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func newControlPlaneCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "The control plane itself: snapshots of its state",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	snap := &cobra.Command{
		Use:   "snapshot",
		Short: "Save an encrypted snapshot of the control plane (restore it with forlock-controlplane snapshot restore)",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	snap.AddCommand(newSnapshotSaveCmd(a))
	cmd.AddCommand(snap)
	return cmd
}

func newSnapshotSaveCmd(a *app) *cobra.Command {
	var passFile, transitKey string
	cmd := &cobra.Command{
		Use:   "save FILE (--passphrase-file P | --transit-key K)",
		Short: "Save an encrypted snapshot of the control plane's database, CA, keys and config to FILE",
		Long: `Save a consistent copy of everything the control plane holds (its database, read while it keeps
serving; the fleet CA; its TLS key and certificate; the backup key-encryption key; the audit key and
checkpoints; its config file) as one file, encrypted inside the control plane to a passphrase
or a Vault Transit key before any byte leaves it. Admin only; the call is audited, the passphrase
never is.

With --passphrase-file, the passphrase is read from that file, which must have mode 0600 and hold
at least 12 characters. Keep the snapshot and the passphrase apart, and both off the control
plane's host: without the passphrase the snapshot cannot be opened, by you or by anyone.

With --transit-key, the control plane's Vault wraps the snapshot's data key with that Transit key
(aes256-gcm96, on the control plane's vault.transit_mount): no passphrase to keep, but the restore
needs that Vault and key. Its token needs read on <mount>/keys/<key> and update on
<mount>/encrypt/<key>; the restoring token, update on <mount>/decrypt/<key>.

FILE is written atomically with mode 0600, and only once the whole snapshot arrived. Restore on a
new host with 'forlock-controlplane snapshot restore FILE --data-dir DIR --passphrase-file P'
(or --vault-address URL --vault-token-file F for a Transit snapshot).`,
		Example: `  forlockctl controlplane snapshot save /backup/controlplane-$(date -u +%Y%m%dT%H%M%SZ).snap --passphrase-file /root/snapshot.pass
  forlockctl controlplane snapshot save /backup/controlplane.snap --transit-key forlock-snapshot`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &forlockv1.SaveSnapshotRequest{TransitKey: transitKey}
			switch {
			case passFile != "" && transitKey != "":
				return usageErrorf("give --passphrase-file or --transit-key, not both")
			case passFile == "" && transitKey == "":
				return usageErrorf("give --passphrase-file (a file of mode 0600 holding the passphrase) or --transit-key (a Vault Transit key of the control plane's Vault)")
			case passFile != "":
				pass, err := keys.ReadPassphraseFile(passFile)
				if err != nil {
					return usageErrorf("%v", err)
				}
				req.Passphrase = string(pass)
			}
			s, err := resolveSettings(a.conn, a.io.Getenv)
			if err != nil {
				return err
			}
			conn, err := dial(s)
			if err != nil {
				return err
			}
			defer func() { _ = conn.Close() }()
			start := time.Now()
			stream, err := forlockv1.NewControlPlaneServiceClient(conn).SaveSnapshot(cmd.Context(), req)
			if err != nil {
				return explainRPC(err, s)
			}
			f, err := atomicfile.Create(args[0], 0o600)
			if err != nil {
				return fmt.Errorf("create %s: %w", args[0], err)
			}
			defer f.Abort() //nolint:errcheck // no-op after Commit; otherwise the partial file goes
			h := sha256.New()
			var n uint64
			var taken time.Time
			var last *forlockv1.SaveSnapshotResponse
			for {
				msg, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return explainRPC(err, s)
				}
				if t := msg.GetTakenAt(); t != nil {
					taken = t.AsTime()
				}
				if _, err := f.Write(msg.GetChunk()); err != nil {
					return fmt.Errorf("write %s: %w", args[0], err)
				}
				h.Write(msg.GetChunk())
				n += uint64(len(msg.GetChunk()))
				if msg.GetDone() {
					last = msg
				}
			}
			sum := hex.EncodeToString(h.Sum(nil))
			if last == nil {
				return fmt.Errorf("the snapshot stream ended early: %s was not written", args[0])
			}
			if last.GetSize() != n || last.GetSha256() != sum {
				return fmt.Errorf("the snapshot received (%d bytes, sha256 %s) is not the one sent (%d bytes, sha256 %s): %s was not written",
					n, sum, last.GetSize(), last.GetSha256(), args[0])
			}
			if err := f.Commit(); err != nil {
				return fmt.Errorf("%w: run the command again", err)
			}
			_, err = fmt.Fprintf(a.io.Out, "saved the control-plane snapshot taken at %s to %s: %d bytes, sha256 %s (%s)\n",
				taken.UTC().Format(time.RFC3339), args[0], n, sum, time.Since(start).Round(time.Millisecond))
			return err
		},
	}
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the passphrase, mode 0600, at least 12 characters")
	cmd.Flags().StringVar(&transitKey, "transit-key", "", "Vault Transit key of the control plane's Vault to encrypt to, instead of a passphrase")
	return cmd
}
