// Package buildinfo reports the version of the running Forlock Fleet binary.
package buildinfo

import "runtime/debug"

// version is set at link time: -ldflags "-X github.com/forlock/fleet/internal/buildinfo.version=v0.1.0".
var version string

// Version returns the link-time version, else the module version or VCS
// revision recorded by the Go toolchain, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}
