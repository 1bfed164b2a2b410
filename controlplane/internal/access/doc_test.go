package access

import (
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/docblock"
	"github.com/forlock/fleet/internal/protocol"
)

var updateDocs = flag.Bool("update", false, "rewrite the tables in docs/security.md from access.Methods and the roles")

// methodsMarkdown renders Methods as the table of docs/security.md, one row
// per RPC, in service and method order.
func methodsMarkdown() string {
	names := make([]string, 0, len(Methods))
	for m := range Methods {
		names = append(names, m)
	}
	slices.Sort(names)
	callers := map[Caller]string{ByAnyone: "anyone", ByAgent: "agent (node certificate)", ByIdentity: "identity"}
	var b strings.Builder
	b.WriteString("| RPC | caller | permission | mutating (audited with its result) |\n|---|---|---|---|\n")
	for _, m := range names {
		r := Methods[m]
		perm, mut := "-", "no"
		if r.Permission != "" {
			perm = "`" + string(r.Permission) + "`"
		}
		if r.Mutating {
			mut = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", strings.TrimPrefix(m, "/"), callers[r.Caller], perm, mut)
	}
	return b.String()
}

// rolesMarkdown renders the permissions and which role holds each.
func rolesMarkdown() string {
	var b strings.Builder
	b.WriteString("| permission |")
	for _, r := range Roles() {
		b.WriteString(" " + string(r) + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(Roles())) + "\n")
	for _, p := range Admin.Permissions() {
		fmt.Fprintf(&b, "| `%s` |", p)
		for _, r := range Roles() {
			mark := ""
			if r.Can(p) {
				mark = "yes"
			}
			b.WriteString(" " + mark + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// kindsMarkdown renders the permission each job kind needs.
func kindsMarkdown() string {
	var b strings.Builder
	b.WriteString("| job kind | permission | destructive (`audit.require_reason` applies) |\n|---|---|---|\n")
	for _, k := range protocol.Kinds() {
		d := "no"
		if k.Destructive() {
			d = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", k, KindPermission(k), d)
	}
	return b.String()
}

// TestSecurityDocTables: docs/security.md's "Who may call what", roles and
// job kind tables are the ones Methods, the roles and KindPermission
// declare; go test -run TestSecurityDocTables -update rewrites them.
func TestSecurityDocTables(t *testing.T) {
	doc := filepath.Join("..", "..", "..", "docs", "security.md")
	require.NoError(t, docblock.Sync(doc, "access: methods", methodsMarkdown(), *updateDocs, "TestSecurityDocTables"))
	require.NoError(t, docblock.Sync(doc, "access: roles", rolesMarkdown(), *updateDocs, "TestSecurityDocTables"))
	require.NoError(t, docblock.Sync(doc, "access: kinds", kindsMarkdown(), *updateDocs, "TestSecurityDocTables"))
}

// TestMethodsMarkdown: the rendering says what each rule says, so the doc
// table cannot be right by accident.
func TestMethodsMarkdown(t *testing.T) {
	md := methodsMarkdown()
	require.Contains(t, md, "| `forlock.v1.NodeService/RemoveNode` | identity | `nodes.remove` | yes |\n")
	require.Contains(t, md, "| `forlock.v1.AgentService/Enroll` | anyone | - | yes |\n")
	require.Contains(t, md, "| `forlock.v1.AgentService/Connect` | agent (node certificate) | - | no |\n")
	require.Contains(t, md, "| `forlock.v1.AuditService/VerifyAudit` | identity | `audit.read` | no |\n")
	require.Equal(t, len(Methods)+2, strings.Count(md, "\n"), "a header, a rule and one row per method")
	roles := rolesMarkdown()
	require.Contains(t, roles, "| `fleet.read` | yes | yes | yes |\n")
	require.Contains(t, roles, "| `restore.run` |  |  | yes |\n")
	require.Contains(t, roles, "| `backup.run` |  | yes | yes |\n")
	kinds := kindsMarkdown()
	require.Contains(t, kinds, "| `restore` | `restore.run` | yes |\n")
	require.Contains(t, kinds, "| `health_check` | `health.run` | no |\n")
	require.Equal(t, len(protocol.Kinds())+2, strings.Count(kinds, "\n"))
}
