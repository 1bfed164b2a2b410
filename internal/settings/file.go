package settings

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// keyError is an error about a key that already names its line.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

// Decode applies the config file's content over the current values,
// strictly: one YAML document holding one mapping, the version key, known
// keys only, each at most once. Relative paths are taken relative to dir
// unless it is empty. Errors give the line and say what to do.
func (t *Table) Decode(data []byte, dir string) error {
	if t.rank == nil {
		t.rank = map[string]source{}
	}
	if len(data) > t.MaxFileSize {
		return fmt.Errorf("larger than %d bytes: is this the right file?", t.MaxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("empty: it needs at least \"version: %d\"", t.Version)
		}
		return fmt.Errorf("not valid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("holds more than one YAML document: keep only one")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: expected a mapping of settings such as \"version: %d\"", root.Line, t.Version)
	}
	version := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], deref(root.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Value != "version" {
			continue
		}
		if v.Tag != "!!int" {
			return fmt.Errorf("line %d: version must be a whole number: \"version: %d\"", v.Line, t.Version)
		}
		if v.Value != fmt.Sprint(t.Version) {
			return fmt.Errorf("line %d: version %s is not supported: %s reads version %d", v.Line, v.Value, t.Name, t.Version)
		}
		version = true
	}
	if !version {
		return fmt.Errorf("version is missing: add \"version: %d\" as the first line", t.Version)
	}
	if err := t.decodeMapping(root, "", dir); err != nil {
		return err
	}
	if t.CheckFile != nil {
		return t.CheckFile()
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// decodeMapping decodes the keys of m, a section if prefix is not empty.
func (t *Table) decodeMapping(m *yaml.Node, prefix, dir string) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], deref(m.Content[i+1])
		key := prefix + k.Value
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: a key must be a name, not a list or mapping", k.Line)
		}
		if seen[key] {
			return fmt.Errorf("line %d: key %s is set twice: keep one", k.Line, key)
		}
		seen[key] = true
		if key == "version" {
			continue
		}
		j := slices.IndexFunc(t.Settings, func(s Setting) bool { return s.Key == key })
		switch {
		case j >= 0 && t.Settings[j].Secret != "":
			return fmt.Errorf("line %d: %s is not read from the config file: %s", k.Line, key, t.Settings[j].Secret)
		case j >= 0:
			if err := t.decodeSetting(t.Settings[j], v, dir); err != nil {
				return err
			}
		case t.isSection(key + "."):
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return fmt.Errorf("line %d: %s must be a mapping of settings", v.Line, key)
			}
			if err := t.decodeMapping(v, key+".", dir); err != nil {
				return err
			}
		default:
			return unknownKey(k, key, t.keys(prefix))
		}
	}
	return nil
}

func (t *Table) decodeSetting(s Setting, v *yaml.Node, dir string) error {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil // "name:" with nothing after it: keep the default
	}
	if err := s.Value.decode(v, s.Key); err != nil {
		if ke := (*keyError)(nil); errors.As(err, &ke) {
			return err
		}
		return fmt.Errorf("line %d: %s: %w", v.Line, s.Key, err)
	}
	t.rank[s.Key] = fromFile
	if sv, ok := s.Value.(*scalar[string]); ok && s.Path && dir != "" && *sv.p != "" && !filepath.IsAbs(*sv.p) {
		*sv.p = filepath.Join(dir, *sv.p)
	}
	return nil
}

func (t *Table) isSection(prefix string) bool {
	return slices.ContainsFunc(t.Settings, func(s Setting) bool { return strings.HasPrefix(s.Key, prefix) })
}

// keys lists the keys a mapping at prefix may hold: settings and sections.
func (t *Table) keys(prefix string) []string {
	var out []string
	if prefix == "" {
		out = append(out, "version")
	}
	for _, s := range t.Settings {
		rest, ok := strings.CutPrefix(s.Key, prefix)
		if !ok || s.Secret != "" {
			continue
		}
		head, _, _ := strings.Cut(rest, ".")
		if k := prefix + head; !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// unknownKey says key is unknown and suggests the nearest of known.
func unknownKey(k *yaml.Node, key string, known []string) error {
	if s := closest(key, known); s != "" {
		return &keyError{fmt.Sprintf("line %d: unknown key '%s' (did you mean %s?)", k.Line, key, s)}
	}
	return &keyError{fmt.Sprintf("line %d: unknown key '%s': remove it; the known keys here are %s", k.Line, key, strings.Join(known, ", "))}
}

// closest returns the known key within edit distance 2 of s, if any.
func closest(s string, known []string) string {
	if len(s) > 128 {
		return ""
	}
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
