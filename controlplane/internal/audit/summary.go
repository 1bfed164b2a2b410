package audit

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Summary bounds.
const (
	maxSummary = 1024
	maxString  = 128
	maxList    = 16
)

// secretWords mark a field that may hold a secret; such a field is shown as
// set, never with its value. Bytes fields are never shown either.
var secretWords = []string{"secret", "token", "key", "password", "passphrase", "pem", "csr", "private", "credential"}

// Summarize renders a request for the audit log: field names and values in
// a compact text form, with every field that could hold a secret replaced
// by "<redacted>" (any bytes field, and any field whose name holds one of
// secretWords: a data key, a join token, a certificate, a CSR), strings cut
// to 128 bytes, lists to 16 items, the whole to 1 KiB.
func Summarize(m proto.Message) string {
	if m == nil {
		return ""
	}
	var b strings.Builder
	writeMessage(&b, m.ProtoReflect())
	s := b.String()
	if len(s) > maxSummary {
		s = truncate(s, maxSummary) + "…"
	}
	return s
}

func writeMessage(b *strings.Builder, m protoreflect.Message) {
	first := true
	// In field-number order (Range's order is not defined).
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		if b.Len() >= maxSummary {
			return
		}
		v := m.Get(fd)
		if !first {
			b.WriteByte(' ')
		}
		first = false
		b.WriteString(string(fd.Name()))
		b.WriteByte('=')
		if redacted(fd) {
			b.WriteString("<redacted>")
			continue
		}
		switch {
		case fd.IsList():
			l := v.List()
			b.WriteByte('[')
			for i := 0; i < l.Len() && i < maxList; i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				writeValue(b, fd, l.Get(i))
			}
			if l.Len() > maxList {
				b.WriteString(",…")
			}
			b.WriteByte(']')
		case fd.IsMap():
			var keys []protoreflect.MapKey
			v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			b.WriteByte('{')
			for i, k := range keys[:min(len(keys), maxList)] {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(quote(k.String()))
				b.WriteByte(':')
				writeValue(b, fd.MapValue(), v.Map().Get(k))
			}
			b.WriteByte('}')
		default:
			writeValue(b, fd, v)
		}
	}
}

func writeValue(b *strings.Builder, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		b.WriteByte('{')
		writeMessage(b, v.Message())
		b.WriteByte('}')
	case protoreflect.StringKind:
		b.WriteString(quote(v.String()))
	case protoreflect.BytesKind:
		b.WriteString("<redacted>")
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			b.WriteString(string(ev.Name()))
		} else {
			b.WriteString(strconv.Itoa(int(v.Enum())))
		}
	default:
		b.WriteString(v.String())
	}
}

func redacted(fd protoreflect.FieldDescriptor) bool {
	if fd.Kind() == protoreflect.BytesKind || (fd.IsMap() && fd.MapValue().Kind() == protoreflect.BytesKind) {
		return true
	}
	name := strings.ToLower(string(fd.Name()))
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

func quote(s string) string {
	if len(s) > maxString {
		s = truncate(s, maxString) + "…"
	}
	return strconv.Quote(s)
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
