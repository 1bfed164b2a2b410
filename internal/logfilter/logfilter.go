// Package logfilter decides which log lines of a Forlock node are error
// lines, for `forlockctl logs --errors`. A line is an error line when:
//
//   - it is a JSON object whose "level" (or "lvl", "severity") is error,
//     fatal, panic, critical, crit, alert or emerg (any case);
//   - it is PostgreSQL's: it contains "ERROR:", "FATAL:" or "PANIC:";
//   - it is nginx's: it contains "[error]", "[crit]", "[alert]" or "[emerg]";
//   - otherwise, it contains ERROR, FATAL, PANIC or CRITICAL as a whole
//     upper-case word.
//
// WARN, "error" inside other words or lower-case prose ("0 errors") do not
// count.
package logfilter

import (
	"encoding/json"
	"strings"
)

var jsonErrorLevels = map[string]bool{
	"error": true, "err": true, "fatal": true, "panic": true, "critical": true,
	"crit": true, "alert": true, "emerg": true, "emergency": true,
}

var markers = []string{
	"ERROR:", "FATAL:", "PANIC:", // PostgreSQL
	"[error]", "[crit]", "[alert]", "[emerg]", // nginx
}

var words = map[string]bool{"ERROR": true, "FATAL": true, "PANIC": true, "CRITICAL": true}

// IsError reports whether line is an error line.
func IsError(line string) bool {
	if t := strings.TrimSpace(line); strings.HasPrefix(t, "{") {
		var fields map[string]any
		if json.Unmarshal([]byte(t), &fields) == nil {
			for _, k := range []string{"level", "lvl", "severity"} {
				if v, ok := fields[k].(string); ok {
					return jsonErrorLevels[strings.ToLower(v)]
				}
			}
		}
	}
	for _, m := range markers {
		if strings.Contains(line, m) {
			return true
		}
	}
	for _, w := range strings.FieldsFunc(line, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_'
	}) {
		if words[w] {
			return true
		}
	}
	return false
}
