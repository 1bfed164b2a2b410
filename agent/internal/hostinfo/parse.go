package hostinfo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseOSRelease returns the operating system's display name from the
// content of os-release(5): PRETTY_NAME, else "NAME VERSION", else NAME,
// else "". Values may be unquoted, single-quoted or double-quoted with
// backslash escapes, as the format allows.
func ParseOSRelease(data []byte) string {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxProcFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "PRETTY_NAME", "NAME", "VERSION":
			vals[k] = unquote(v)
		}
	}
	switch {
	case vals["PRETTY_NAME"] != "":
		return vals["PRETTY_NAME"]
	case vals["NAME"] != "" && vals["VERSION"] != "":
		return vals["NAME"] + " " + vals["VERSION"]
	default:
		return vals["NAME"]
	}
}

// unquote undoes os-release's shell-style quoting of one value and drops
// control characters, which have no place in a display name.
func unquote(v string) string {
	var b strings.Builder
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		v = v[1 : len(v)-1]
		for _, r := range v {
			if r >= ' ' && r != 0x7f {
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	escaped := false
	for _, r := range v {
		switch {
		case escaped:
			escaped = false
		case r == '\\':
			escaped = true
			continue
		}
		if r >= ' ' && r != 0x7f {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ParseUptime returns the system uptime from the content of /proc/uptime:
// "<seconds since boot> <idle seconds>".
func ParseUptime(data []byte) (time.Duration, error) {
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0, errors.New("uptime: empty")
	}
	secs, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, fmt.Errorf("uptime: %w", err)
	}
	// A float covers NaN and ±Inf; bound it so the conversion cannot
	// overflow (a Duration holds about 292 years).
	if math.IsNaN(secs) || secs < 0 || secs > 100*365*24*3600 {
		return 0, fmt.Errorf("uptime: %q is out of range", fields[0])
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// Memory is the machine's memory as /proc/meminfo reports it.
type Memory struct {
	// Total is MemTotal in bytes.
	Total uint64
	// Available is MemAvailable in bytes: memory available for new work
	// without swapping. Zero on kernels older than 3.14, which lack it.
	Available uint64
}

// ParseMeminfo reads MemTotal and MemAvailable from the content of
// /proc/meminfo ("MemTotal:       16318480 kB"). MemTotal is required.
func ParseMeminfo(data []byte) (Memory, error) {
	var m Memory
	haveTotal := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxProcFile)
	for sc.Scan() {
		k, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "MemTotal" && k != "MemAvailable") {
			continue
		}
		v, err := parseKB(rest)
		if err != nil {
			return Memory{}, fmt.Errorf("meminfo %s: %w", k, err)
		}
		if k == "MemTotal" {
			m.Total, haveTotal = v, true
		} else {
			m.Available = v
		}
	}
	if !haveTotal {
		return Memory{}, errors.New("meminfo: no MemTotal line")
	}
	return m, nil
}

// parseKB parses " 16318480 kB" into bytes.
func parseKB(s string) (uint64, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 2 || (len(fields) == 2 && fields[1] != "kB") {
		return 0, fmt.Errorf("unexpected value %q", strings.TrimSpace(s))
	}
	n, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return 0, err
	}
	if len(fields) == 1 {
		return n, nil
	}
	if n > math.MaxUint64/1024 {
		return 0, fmt.Errorf("%d kB overflows", n)
	}
	return n * 1024, nil
}
