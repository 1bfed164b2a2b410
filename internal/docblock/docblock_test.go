package docblock

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.md")
	doc := "# Title\n\n<!-- table: x -->\n| a |\n<!-- /table: x -->\n\nafter\n"
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))

	require.NoError(t, Sync(path, "table: x", "| a |\n", false, "TestX"))
	err := Sync(path, "table: x", "| b |\n", false, "TestX")
	require.ErrorContains(t, err, "the table: x block is not the one the code declares: run go test -run TestX -update")
	got, _ := os.ReadFile(path)
	require.Equal(t, doc, string(got), "checking never writes")

	require.NoError(t, Sync(path, "table: x", "| b |\n| c |\n", true, "TestX"))
	got, _ = os.ReadFile(path)
	require.Equal(t, "# Title\n\n<!-- table: x -->\n| b |\n| c |\n<!-- /table: x -->\n\nafter\n", string(got))
	require.NoError(t, Sync(path, "table: x", "| b |\n| c |\n", false, "TestX"))

	require.ErrorContains(t, Sync(path, "table: y", "", false, "TestX"), `no "<!-- table: y -->" ... "<!-- /table: y -->" section`)
	require.Error(t, Sync(filepath.Join(t.TempDir(), "none.md"), "table: x", "", false, "TestX"))
}
