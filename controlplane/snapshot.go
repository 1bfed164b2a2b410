package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/snapshot"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/controlplane/internal/vault"
	"github.com/forlock/fleet/internal/buildinfo"
	"github.com/forlock/fleet/internal/keys"
	"github.com/forlock/fleet/internal/settings"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// snapshotName is the control plane's name in its snapshots' headers.
const snapshotName = "controlplane"

// newSnapshots returns the saver of this control plane's snapshots.
func (s *Server) newSnapshots() (*snapshot.Saver, error) {
	keysFrom := s.cfg.BackupKeys
	if keysFrom == "" {
		keysFrom = BackupKeysLocal
	}
	cfg := snapshot.Config{DataDir: s.cfg.DataDir, DB: s.store, ConfigFile: s.cfg.ConfigFile,
		Name: snapshotName, ServerVersion: buildinfo.Version(), BackupKeys: keysFrom, Vault: vaultManifest(s.cfg.Vault)}
	if s.cfg.Vault != nil {
		// s.vault is logged in later in init, before anything saves.
		cfg.Transit = func(ctx context.Context, name string) (keys.Wrapper, error) {
			return snapshotTransit(ctx, s.vault, name, true)
		}
	}
	return snapshot.NewSaver(cfg)
}

// snapshotTransit is the wrapper of the Transit key name for snapshots
// (bound to snapshot.TransitContext). check reads the key first, so a save
// to a missing key, or one of a type that cannot bind the context, fails
// before anything is read; a restore only decrypts, which needs nothing
// more of the token's policy than update on <mount>/decrypt/<name>.
func snapshotTransit(ctx context.Context, v *vault.Client, name string, check bool) (keys.Wrapper, error) {
	t, err := v.TransitFor(name, snapshot.TransitContext)
	if err == nil && check {
		err = t.Refresh(ctx)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// vaultManifest is the Vault configuration a snapshot records, without
// credentials: with Vault Transit the backup key stays in Vault, and the
// restored control plane must be pointed at the same Vault and keys.
func vaultManifest(v *VaultConfig) map[string]string {
	if v == nil {
		return nil
	}
	m := map[string]string{"address": v.Address, "namespace": v.Namespace, "pki_mount": v.PKIMount, "pki_role": v.PKIRole,
		"kv_mount": v.KVMount, "transit_mount": v.TransitMount, "transit_key": v.TransitKey, "approle_mount": v.AppRoleMount}
	for k, val := range m {
		if val == "" {
			delete(m, k)
		}
	}
	return m
}

// loadRestored tells the registry about the snapshot the database was
// restored from, if it was.
func (s *Server) loadRestored() error {
	r, ok, err := s.store.Restored()
	if err != nil || !ok {
		return err
	}
	s.registry.Restored(r.TakenAt, r.RestoredAt, s.store)
	s.restored = &r
	s.log.Info("this control plane was restored from a snapshot: certificates its agents got after the snapshot are adopted",
		"taken_at", r.TakenAt, "restored_at", r.RestoredAt, "unknown_tasks", r.UnknownTasks)
	return nil
}

// restoredStatus is GetStatus's restored_from.
func (s *Server) restoredStatus() *forlockv1.RestoredFrom {
	if s.restored == nil {
		return nil
	}
	out := &forlockv1.RestoredFrom{TakenAt: timestamppb.New(s.restored.TakenAt), RestoredAt: timestamppb.New(s.restored.RestoredAt),
		UnknownTasks: uint32(min(s.restored.UnknownTasks, 1<<31))} //nolint:gosec // G115: bounded above
	for _, l := range s.registry.LostNodes() {
		out.LostNodes = append(out.LostNodes, &forlockv1.LostNode{NodeId: l.ID, LastSeen: timestamppb.New(l.LastSeen)})
	}
	return out
}

// newSnapshotCommand is "forlock-controlplane snapshot restore".
func newSnapshotCommand(getenv func(string) string, stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Restore the control plane from a snapshot (forlockctl controlplane snapshot save makes them)"}
	var dataDir, passFile string
	var force bool
	var st cpSettings
	restore := &cobra.Command{
		Use:   "restore FILE --data-dir DIR (--passphrase-file P | --vault-address URL --vault-token-file F) [--force]",
		Short: "Restore a control-plane snapshot into a data dir, offline",
		Long: `restore decrypts and checks a snapshot and writes the database, the fleet CA, the server's key and
certificate, the backup key and the audit key into the data dir with their modes (keys 0600). The
control plane must not be running on it. A non-empty data dir is refused unless --force, which
moves it aside to <data-dir>.before-restore-<time> (it is never deleted). On any error the data
dir is left as it was; the snapshot's key is unwrapped before anything is written.

A snapshot encrypted to a passphrase needs --passphrase-file. One encrypted to a Vault Transit key
(its key ID, vault-transit:<key>:v<n>, is printed on failure) is unwrapped by that Vault: give its
address and a login as the control plane takes them, by flag, environment variable
(FORLOCK_CONTROLPLANE_VAULT_*) or the vault section of a --config file: --vault-address with
--vault-token-file, or --vault-role-id with --vault-secret-id-file (AppRole); --vault-ca-file,
--vault-namespace and --vault-transit-mount as needed. The token needs update on
<transit mount>/decrypt/<key>.

Tasks in flight when the snapshot was taken are marked unknown and never dispatched again, and the
database records that it was restored, so that the control plane accepts the certificates its
agents got after the snapshot. The config file, if the snapshot holds one, is written to
<data-dir>/config.yaml: review it and start the control plane with --config pointing at it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := st.table()
			if err := t.Resolve(cmd.Flags(), getenv); err != nil {
				return settings.UsageError(err)
			}
			var k snapshot.Keys
			if passFile != "" {
				pass, err := keys.ReadPassphraseFile(passFile)
				if err != nil {
					return settings.UsageError(err)
				}
				k.Passphrase = func() (keys.Wrapper, error) { return keys.OpenPassphrase(pass), nil }
			}
			if t.Given("vault.") {
				var closeVault func()
				k.Transit, closeVault = restoreTransit(st.vault)
				defer closeVault()
			}
			if dataDir == "" || (k.Passphrase == nil && k.Transit == nil) {
				return settings.UsageError(errors.New("give --data-dir, and --passphrase-file or the Vault settings (--vault-address and a login) of a snapshot encrypted to a Vault Transit key"))
			}
			res, err := restoreSnapshot(cmd.Context(), args[0], dataDir, k, force, time.Now())
			switch {
			case errors.Is(err, snapshot.ErrNeedPassphrase):
				return settings.UsageError(fmt.Errorf("%w: give --passphrase-file (nothing was written)", err))
			case errors.Is(err, snapshot.ErrNeedVault):
				return settings.UsageError(fmt.Errorf("%w: give --vault-address with --vault-token-file, or --vault-role-id and --vault-secret-id-file (or FORLOCK_CONTROLPLANE_VAULT_*, or --config with a vault section); nothing was written", err))
			case err != nil:
				return err
			}
			m := res.Manifest
			_, _ = fmt.Fprintf(stdout, "restored the control plane from the snapshot taken at %s (version %s) into %s\n",
				m.TakenAt.UTC().Format(time.RFC3339), m.ServerVersion, dataDir)
			if res.Aside != "" {
				_, _ = fmt.Fprintf(stdout, "the previous data dir was moved to %s\n", res.Aside)
			}
			_, _ = fmt.Fprintf(stdout, "tasks in flight at the snapshot, now unknown: %d\n", res.unknown)
			if m.BackupKeys == BackupKeysVaultTransit {
				_, _ = fmt.Fprintf(stdout, "backup keys are in Vault Transit (%s key %s): configure the same Vault before starting\n", m.Vault["address"], m.Vault["transit_key"])
			}
			_, _ = fmt.Fprintln(stdout, "start forlock-controlplane on this data dir (with --config "+filepath.Join(dataDir, snapshot.ConfigName)+" if it was restored)")
			return nil
		},
	}
	restore.Flags().StringVar(&dataDir, "data-dir", "", "the data dir to restore into (required)")
	restore.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the snapshot's passphrase, mode 0600 (a snapshot encrypted to a passphrase)")
	restore.Flags().BoolVar(&force, "force", false, "restore over a non-empty data dir, moving it aside (never deleted)")
	// The Vault settings of the control plane, and --config for a file
	// holding them; the file's other settings are read and checked, not used.
	vaultOnly := *st.table()
	vaultOnly.Settings = slices.DeleteFunc(vaultOnly.Settings, func(s settings.Setting) bool { return !strings.HasPrefix(s.Key, "vault.") })
	vaultOnly.AddFlags(restore.Flags())
	cmd.AddCommand(restore)
	return cmd
}

// restoreTransit returns what logs in to the Vault of cfg, only when the
// snapshot needs it, and gives the Transit wrapper of the key its key ID
// names; and what closes the client.
func restoreTransit(cfg VaultConfig) (func(ctx context.Context, keyID string) (keys.Wrapper, error), func()) {
	var c *vault.Client
	open := func(ctx context.Context, keyID string) (keys.Wrapper, error) {
		var err error
		if c, err = vault.New(ctx, cfg); err != nil {
			return nil, fmt.Errorf("log in to Vault to unwrap the snapshot's data key: %w", err)
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(keyID, keys.TransitKeyIDPrefix), ":")
		return snapshotTransit(ctx, c, name, false)
	}
	return open, func() {
		if c != nil {
			c.Close()
		}
	}
}

type restoreResult struct {
	snapshot.Restored
	unknown int
}

// restoreSnapshot restores file into dataDir and marks the restored state.
func restoreSnapshot(ctx context.Context, file, dataDir string, k snapshot.Keys, force bool, now time.Time) (restoreResult, error) {
	var out restoreResult
	r, err := snapshot.Restore(ctx, snapshot.RestoreOptions{File: file, DataDir: dataDir, Force: force,
		Keys: k, Now: func() time.Time { return now },
		Mark: func(dbPath string, m snapshot.Manifest) error {
			st, err := store.Open(dbPath)
			if err != nil {
				return fmt.Errorf("restored database: %w", err)
			}
			n, err := jobs.MarkUnknown(st, m.TakenAt)
			if err == nil {
				out.unknown = n
				err = st.SetRestored(store.RestoredFrom{TakenAt: m.TakenAt, RestoredAt: now.UTC(), UnknownTasks: n})
			}
			if cerr := st.Close(); err == nil {
				err = cerr
			}
			return err
		}})
	out.Restored = r
	return out, err
}
