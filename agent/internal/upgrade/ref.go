package upgrade

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

var (
	tagRe    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRe = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	hexIDRe  = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// checkTarget accepts a tag (v2, 1.4.0) or a digest (sha256:<64 hex>).
func checkTarget(target string) error {
	if tagRe.MatchString(target) || digestRe.MatchString(target) {
		return nil
	}
	return fmt.Errorf("target %q: want an image tag such as v2 or a digest sha256:<64 hex digits>", target)
}

// repository strips the tag or digest of ref:
// 127.0.0.1:5000/forlock/api:v1 -> 127.0.0.1:5000/forlock/api.
func repository(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

// withTarget is ref's repository at target (a tag or a digest).
func withTarget(ref, target string) string {
	if digestRe.MatchString(target) {
		return repository(ref) + "@" + target
	}
	return repository(ref) + ":" + target
}

// isImageID reports whether ref is an image ID rather than a name.
func isImageID(ref string) bool {
	return digestRe.MatchString(ref) || hexIDRe.MatchString(ref)
}

// repoDigest picks the digest of ref's repository among an image's repo
// digests, else the first; empty for an image never pulled or pushed.
func repoDigest(ref string, digests []string) string {
	repo := repository(ref)
	if i := slices.IndexFunc(digests, func(d string) bool { return strings.HasPrefix(d, repo+"@") }); i >= 0 {
		return digests[i]
	}
	if len(digests) > 0 {
		return digests[0]
	}
	return ""
}

// sourceRepository is where a service's next image comes from: the
// repository of the reference its container was created from, or of its
// repo digest when the container was created from an image ID.
func sourceRepository(sr ServiceRelease) (string, error) {
	if !isImageID(sr.Image) {
		return repository(sr.Image), nil
	}
	if sr.RepoDigest != "" {
		return repository(sr.RepoDigest), nil
	}
	return "", fmt.Errorf("container %s runs image %s, which names no repository: recreate it from a repository reference (e.g. with docker compose) first", sr.Container, sr.Image)
}
