package commands

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func newCertsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "The TLS certificates the nodes' nginx serve: list, rotate",
		Long: `The TLS certificates the nodes' nginx serve.

'certs list' shows what each node's nginx serves now (read by the agent with
a TLS handshake on every health check), soonest expiry first. 'certs rotate'
installs a fresh certificate from Vault (PKI: issued per node, ECDSA P-256;
or KV v2: a pair another tool put there) as a job: the agent validates the
pair, installs it atomically, runs nginx -t, reloads nginx and confirms by a
handshake that the new certificate is served; any failure puts the old pair
back. The control plane rotates by itself every 90 days and when fewer than
30 days are left; 'forlockctl status' flags certificates with fewer than 14.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(newCertsListCmd(a), newCertsRotateCmd(a))
	return cmd
}

func newCertsListCmd(a *app) *cobra.Command {
	var selector string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the certificates the nodes' nginx serve, soonest expiry first",
		Example: "  forlockctl certs list\n  forlockctl certs list -l env=prod -o json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateSelector(selector); err != nil {
				return err
			}
			s, err := resolveSettings(a.conn, a.io.Getenv)
			if err != nil {
				return err
			}
			return callUnary(cmd.Context(), s, forlockv1.NewCertServiceClient, func(ctx context.Context, c forlockv1.CertServiceClient) error {
				resp, err := c.ListCertificates(ctx, &forlockv1.ListCertificatesRequest{LabelSelector: selector})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				return printCerts(a.io.Out, a.now(), resp.GetCertificates())
			})
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "only nodes matching this label selector")
	return cmd
}

func printCerts(w io.Writer, now time.Time, certs []*forlockv1.NodeCertificate) error {
	if len(certs) == 0 {
		_, err := fmt.Fprintln(w, "no node has reported a certificate yet (the agent needs tls_addr, or an https api_url)")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tSERIAL\tSUBJECT\tNAMES\tNOT AFTER\tLEFT\tSOURCE\tROTATED")
	for _, nc := range certs {
		c := nc.GetCertificate()
		serial := c.GetSerial()
		if len(serial) > 16 {
			serial = serial[:16] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", nc.GetNodeName(), orDash(serial), orDash(c.GetSubject()),
			orDash(strings.Join(c.GetNames(), ",")), utcMinute(c.GetNotAfter()), tlsLeft(now, c), certSource(c.GetSource()),
			rotated(now, c))
	}
	return flush(tw)
}

func certSource(s forlockv1.CertificateSource) string {
	switch s {
	case forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_PKI:
		return "vault-pki"
	case forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_KV:
		return "vault-kv"
	}
	return "other"
}

func rotated(now time.Time, c *forlockv1.CertificateInfo) string {
	if c.GetRotatedAt() == nil {
		return "-"
	}
	return age(now, c.GetRotatedAt()) + " ago"
}

type certsRotateFlags struct {
	source string
	kvPath string
	ttl    time.Duration
	jobs   jobFlags
}

func newCertsRotateCmd(a *app) *cobra.Command {
	var f certsRotateFlags
	cmd := &cobra.Command{
		Use:   "rotate (--node NODE | -l SELECTOR | --all)",
		Short: "Install a fresh certificate from Vault into the nodes' nginx, as a job",
		Long: `Install a fresh TLS certificate into each target node's nginx, as a cert_rotate
job. With --source pki (default) Vault PKI issues one per node (ECDSA P-256,
--ttl, default 90 days, names from the control plane's configuration and
the node's name); with --source kv the pair is read from Vault KV v2 at
--kv-path ("{node}" becomes the node's name). Private keys travel only inside
the task over mTLS: the control plane never stores them and the agent never
logs them.

` + jobFlagsHelp,
		Example: `  forlockctl certs rotate --all --max-parallel 5
  forlockctl certs rotate --node web-1
  forlockctl certs rotate -l env=prod --source kv --kv-path tls/{node}`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := f.spec(cmd.Flags())
			if err != nil {
				return err
			}
			return a.runJob(cmd, &f.jobs, spec, certsTable)
		},
	}
	fs := cmd.Flags()
	f.jobs.register(fs)
	fs.StringVar(&f.source, "source", "pki", "where the certificate comes from: pki (Vault PKI issues it) or kv (Vault KV v2)")
	fs.StringVar(&f.kvPath, "kv-path", "", "with --source kv: the secret's path under the KV mount; {node} is the node's name")
	fs.DurationVar(&f.ttl, "ttl", 0, "with --source pki: the certificate's lifetime (default 90 days; 1h to 397 days)")
	return cmd
}

func (f *certsRotateFlags) spec(fs *pflag.FlagSet) (*forlockv1.JobSpec, error) {
	rot := &forlockv1.CertRotateSpec{}
	switch f.source {
	case "pki":
		rot.Source = forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_PKI
		if fs.Changed("kv-path") {
			return nil, usageErrorf("--kv-path goes with --source kv")
		}
	case "kv":
		rot.Source = forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_KV
		if fs.Changed("ttl") {
			return nil, usageErrorf("--ttl goes with --source pki: a KV certificate's lifetime is its own")
		}
		if strings.HasPrefix(f.kvPath, "/") || strings.Contains(f.kvPath, "..") {
			return nil, usageErrorf("--kv-path %q: a relative path under the KV mount, without '..'", f.kvPath)
		}
		rot.KvPath = f.kvPath
	default:
		return nil, usageErrorf("--source %q: use pki or kv", f.source)
	}
	if f.ttl != 0 {
		if f.ttl < time.Hour || f.ttl > 397*24*time.Hour {
			return nil, usageErrorf("--ttl %s: give 1h to 9528h (397 days)", f.ttl)
		}
		rot.Ttl = durationpb.New(f.ttl)
	}
	return &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_CertRotate{CertRotate: rot}}, nil
}

// certsTable ends a rotate watch: the task table, then the certificate
// each node serves now.
var certsTable = finisher{
	print: func(w io.Writer, j *forlockv1.Job) error {
		if err := printJobSummary(w, j); err != nil {
			return err
		}
		if err := printTaskTable(w, j.GetTasks()); err != nil {
			return err
		}
		var certs []*forlockv1.NodeCertificate
		for _, t := range j.GetTasks() {
			if c := t.GetCertificate(); c != nil {
				certs = append(certs, &forlockv1.NodeCertificate{NodeId: t.GetNodeId(), NodeName: t.GetNodeName(), Certificate: c})
			}
		}
		if len(certs) == 0 {
			return nil
		}
		if _, err := fmt.Fprintln(w, "\nserved now:"); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return printCerts(w, time.Now(), certs)
	},
	result: jobResult,
}
