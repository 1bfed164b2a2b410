package upgrade

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/forlock/fleet/internal/atomicfile"
)

// HistoryFile is the name of the release history in the agent's state
// directory.
const HistoryFile = "releases.json"

// maxHistory bounds the releases a History keeps.
const maxHistory = 20

// ID names a release by its images: the same images, the same ID.
func (r Release) ID() string {
	h := sha256.New()
	for _, s := range r.Services {
		fmt.Fprintf(h, "%s=%s\n", s.Service, s.ImageID)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// History is the node's recorded releases, whole (container configurations
// included) so that a rollback can create them again, in a JSON file (0600:
// container configurations hold environment variables), oldest first. It
// keeps the newest 20. Its methods may be called concurrently.
type History struct {
	mu   sync.Mutex
	path string
}

// NewHistory returns the history kept in the file path.
func NewHistory(path string) *History { return &History{path: path} }

func (h *History) load() ([]Release, error) {
	b, err := os.ReadFile(h.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rs []Release
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("%s: %w: move it away to start a new history", h.path, err)
	}
	return rs, nil
}

// Add appends r unless it is the newest entry already.
func (h *History) Add(r Release) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs, err := h.load()
	if err != nil {
		return err
	}
	if n := len(rs); n > 0 && rs[n-1].ID() == r.ID() {
		return nil
	}
	rs = append(rs, r)
	if len(rs) > maxHistory {
		rs = rs[len(rs)-maxHistory:]
	}
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	return atomicfile.Write(h.path, b, 0o600)
}

// Target picks the release a rollback returns to: the one with ID id, or,
// without an ID, the newest recorded release that differs from current.
func (h *History) Target(current, id string) (Release, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs, err := h.load()
	if err != nil {
		return Release{}, err
	}
	for i := len(rs) - 1; i >= 0; i-- {
		rid := rs[i].ID()
		if (id != "" && rid == id) || (id == "" && rid != current) {
			return rs[i], nil
		}
	}
	var ids []string
	for _, r := range slices.Backward(rs) {
		ids = append(ids, r.ID())
	}
	if id != "" {
		return Release{}, fmt.Errorf("release %s is not recorded on this node (recorded: %s)", id, listOrNone(ids))
	}
	return Release{}, fmt.Errorf("no earlier release is recorded on this node (current %s): nothing to roll back to", current)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}
