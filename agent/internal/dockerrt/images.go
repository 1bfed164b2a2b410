package dockerrt

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
)

// RegistryAuth are the credentials of an image registry. The zero value
// pulls anonymously.
type RegistryAuth struct {
	Username string
	Password string `json:"-"`
}

// IsNotFound reports whether err says the engine has no such container,
// image or network.
func IsNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// InspectImage returns what the engine knows of the local image ref (a
// reference or an image ID). A missing image gives an error for which
// IsNotFound is true.
func (r *Runtime) InspectImage(ctx context.Context, ref string) (image.InspectResponse, error) {
	res, err := r.cli.ImageInspect(ctx, ref)
	if err != nil {
		return image.InspectResponse{}, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return res.InspectResponse, nil
}

// PullImage pulls ref (repo:tag or repo@sha256:...) from its registry,
// with auth when it has a username, and returns once the engine has the
// image. Errors the engine reports in the middle of the pull (an unknown
// tag, a refused login) are returned, never the credentials.
func (r *Runtime) PullImage(ctx context.Context, ref string, auth RegistryAuth) error {
	opts := client.ImagePullOptions{}
	if auth.Username != "" {
		enc, err := encodeAuth(ref, auth)
		if err != nil {
			return err
		}
		opts.RegistryAuth = enc
	}
	resp, err := r.cli.ImagePull(ctx, ref, opts)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := resp.Wait(ctx); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// encodeAuth is the X-Registry-Auth header for ref's registry.
func encodeAuth(ref string, auth RegistryAuth) (string, error) {
	// The engine's X-Registry-Auth header carries the password by design.
	b, err := json.Marshal(registry.AuthConfig{ //nolint:gosec // see above

		Username: auth.Username, Password: auth.Password, ServerAddress: RegistryHost(ref),
	})
	if err != nil {
		return "", fmt.Errorf("encode registry credentials: %w", err)
	}
	return base64.URLEncoding.EncodeToString(b), nil
}

// RegistryHost is the registry an image reference is pulled from:
// "127.0.0.1:5000" for 127.0.0.1:5000/forlock/api:v1, "docker.io" for
// forlock-test/api:latest or postgres:15.
func RegistryHost(ref string) string {
	first, _, found := strings.Cut(ref, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return "docker.io"
}
