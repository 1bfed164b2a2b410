package commands

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/forlock/fleet/internal/buildinfo"
)

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print forlockctl's version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			v := struct {
				Version  string `json:"version"`
				Go       string `json:"go"`
				Platform string `json:"platform"`
			}{buildinfo.Version(), runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH}
			if a.output == outputJSON {
				b, err := json.MarshalIndent(v, "", "  ")
				if err != nil {
					return fmt.Errorf("encode version: %w", err)
				}
				_, err = fmt.Fprintf(a.io.Out, "%s\n", b)
				return err
			}
			_, err := fmt.Fprintf(a.io.Out, "forlockctl %s (%s %s)\n", v.Version, v.Go, v.Platform)
			return err
		},
	}
}
