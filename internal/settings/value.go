package settings

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Value is where a setting's value goes: a pointer into the binary's
// config struct, with the parser for its kind. Set parses the text form
// (flags, environment, defaults); decode reads the config file's node.
type Value interface {
	Set(text string) error
	decode(n *yaml.Node, key string) error
	reset()
	// Type names the kind in the help text, e.g. "duration".
	Type() string
}

// scalar is a Value held in one YAML scalar of one of tags.
type scalar[T any] struct {
	p     *T
	typ   string
	tags  []string // accepted YAML tags; the value's text is parsed
	parse func(string) (T, error)
	want  string // what a wrong tag gets told, e.g. "true or false"
}

func (v *scalar[T]) Type() string { return v.typ }
func (v *scalar[T]) reset()       { var zero T; *v.p = zero }

func (v *scalar[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

func (v *scalar[T]) decode(n *yaml.Node, _ string) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("must be a single value, not a list or mapping")
	}
	ok := false
	for _, t := range v.tags {
		ok = ok || n.Tag == t
	}
	if !ok {
		return fmt.Errorf("must be %s", v.want)
	}
	return v.Set(n.Value)
}

// String is a text setting. A number in the file is taken as its text.
func String(p *string) Value {
	return &scalar[string]{p: p, typ: "string", tags: []string{"!!str", "!!int", "!!float"},
		parse: func(s string) (string, error) { return s, nil }, want: "a text value; quote it if it is meant as one"}
}

// Func is a text setting checked by parse, e.g. a log level.
func Func[T any](p *T, typ string, parse func(string) (T, error)) Value {
	return &scalar[T]{p: p, typ: typ, tags: []string{"!!str", "!!int", "!!float"}, parse: parse,
		want: "a text value; quote it if it is meant as one"}
}

// Bool is true or false.
func Bool(p *bool) Value {
	return &scalar[bool]{p: p, typ: "bool", tags: []string{"!!bool"}, want: "true or false",
		parse: func(s string) (bool, error) {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return false, fmt.Errorf("%q is not true or false", s)
			}
			return b, nil
		}}
}

// Int is a whole number.
func Int(p *int) Value {
	return &scalar[int]{p: p, typ: "int", tags: []string{"!!int"}, want: "a whole number",
		parse: func(s string) (int, error) {
			n, err := strconv.ParseInt(s, 0, strconv.IntSize)
			if err != nil {
				return 0, fmt.Errorf("%q is not a whole number", s)
			}
			return int(n), nil
		}}
}

// Uint32 is a whole number from 0 to 4294967295.
func Uint32(p *uint32) Value {
	return &scalar[uint32]{p: p, typ: "uint", tags: []string{"!!int"}, want: "a whole number from 0",
		parse: func(s string) (uint32, error) {
			n, err := strconv.ParseUint(s, 0, 32)
			if err != nil {
				return 0, fmt.Errorf("%q is not a whole number from 0 to 4294967295", s)
			}
			return uint32(n), nil
		}}
}

// Float is a number.
func Float(p *float64) Value {
	return &scalar[float64]{p: p, typ: "float", tags: []string{"!!int", "!!float"}, want: "a number",
		parse: func(s string) (float64, error) {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return 0, fmt.Errorf("%q is not a number", s)
			}
			return f, nil
		}}
}

// Duration is a Go duration such as 10s or 24h.
func Duration(p *time.Duration) Value {
	return &scalar[time.Duration]{p: p, typ: "duration", tags: []string{"!!str", "!!int"}, want: "a duration such as 10s or 24h",
		parse: func(s string) (time.Duration, error) {
			d, err := time.ParseDuration(s)
			if err != nil {
				return 0, fmt.Errorf("%q is not a duration such as 10s or 24h", s)
			}
			return d, nil
		}}
}

// Size is a byte count: "64MiB", "512KiB", "2GiB" or plain bytes.
func Size(p *int64) Value { return Func(p, "size", ParseSize) }

// ParseSize parses "64MiB", "512KiB", "2GiB" or a plain byte count.
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("size %q: want bytes or a number with KiB, MiB or GiB, e.g. 64MiB", s)
	}
	return n * mult, nil
}

// list is a list of names: comma-separated in text, a YAML sequence or
// comma-separated text in the file.
type list struct{ p *[]string }

// List is a list of names such as containers or directories.
func List(p *[]string) Value { return list{p} }

func (list) Type() string { return "strings" }
func (v list) reset()     { *v.p = nil }
func (v list) Set(s string) error {
	*v.p = nil
	if strings.TrimSpace(s) == "" {
		return nil // an empty flag clears the list
	}
	for _, e := range strings.Split(s, ",") {
		*v.p = append(*v.p, strings.TrimSpace(e))
	}
	return nil
}

func (v list) decode(n *yaml.Node, _ string) error {
	bad := errors.New("must be a list of names, e.g. [a, b]")
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		return v.Set(n.Value)
	case n.Kind != yaml.SequenceNode:
		return bad
	}
	*v.p = make([]string, 0, len(n.Content))
	for _, it := range n.Content {
		if it.Kind == yaml.AliasNode {
			it = it.Alias
		}
		if it.Kind != yaml.ScalarNode || it.Tag != "!!str" {
			return bad
		}
		*v.p = append(*v.p, it.Value)
	}
	return nil
}

// structured is a value of YAML structure, such as a list of schedules:
// YAML (or JSON) text on the command line and in the environment.
type structured[T any] struct {
	p   *T
	typ string
}

// YAML is a structured value decoded strictly into *p: an unknown key is
// an error that suggests the nearest known one.
func YAML[T any](p *T, typ string) Value { return structured[T]{p, typ} }

func (v structured[T]) Type() string { return v.typ }
func (v structured[T]) reset()       { var zero T; *v.p = zero }

func (v structured[T]) Set(s string) error {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader([]byte(s))).Decode(&doc); err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	if len(doc.Content) != 1 {
		return errors.New("empty")
	}
	return v.decode(doc.Content[0], "")
}

func (v structured[T]) decode(n *yaml.Node, key string) error {
	if err := checkKeys(n, reflect.TypeFor[T](), key); err != nil {
		return err
	}
	var x T
	if err := n.Decode(&x); err != nil {
		return err
	}
	*v.p = x
	return nil
}

// checkKeys refuses mapping keys that name no field of t (by yaml tag).
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		var known []string
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = t.Field(i).Type
				known = append(known, name)
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				return unknownKey(k, joinKey(path, k.Value), prefixed(path, known))
			}
			if err := checkKeys(n.Content[i+1], ft, joinKey(path, k.Value)); err != nil {
				return err
			}
		}
	}
	return nil
}

func prefixed(path string, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = joinKey(path, k)
	}
	return out
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
