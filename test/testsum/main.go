// Command testsum reads `go test -json` on stdin, keeps the whole stream in
// a file, and prints a readable summary: one ok/FAIL line per package as it
// finishes, then the output of every failed test (and of packages that
// failed outside a test, e.g. a build error or a panic in TestMain), then
// every skipped test. It exits non-zero when any test failed or skipped: a
// full run must not pass by skipping. A package without test files is not
// a skip.
//
//	go test -json ./... | go run ./test/testsum -o bin/test.json
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	Elapsed     float64
	FailedBuild string
	ImportPath  string
}

type key struct{ pkg, test string }

// summary is what a stream comes to.
type summary struct {
	output  map[key][]string
	failed  []key // in the order they failed
	skipped []key
	pkgs    int
	// build output by import path (build-output events), and the build
	// that failed a package.
	build       map[string][]string
	failedBuild map[string]string
}

func main() {
	out := flag.String("o", "", "write the raw JSON stream to this file")
	flag.Parse()
	raw := io.Discard
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsum:", err)
			os.Exit(2)
		}
		defer func() { _ = f.Close() }()
		raw = f
	}
	s, err := read(os.Stdin, raw, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	if !s.report(os.Stdout, *out) {
		os.Exit(1)
	}
}

// read consumes the stream, copying it to raw and printing package lines
// to w as packages finish.
func read(r io.Reader, raw, w io.Writer) (*summary, error) {
	s := &summary{output: map[key][]string{}, build: map[string][]string{}, failedBuild: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if _, err := fmt.Fprintf(raw, "%s\n", line); err != nil {
			return nil, fmt.Errorf("write the JSON copy: %w", err)
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (go vet or linker noise): keep it visible.
			_, _ = fmt.Fprintf(w, "%s\n", line)
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			s.output[k] = append(s.output[k], e.Output)
		case "build-output":
			s.build[e.ImportPath] = append(s.build[e.ImportPath], e.Output)
		case "fail":
			s.failed = append(s.failed, k)
			if e.Test == "" {
				s.pkgs++
				why := ""
				if e.FailedBuild != "" {
					why = " [build failed]"
					s.failedBuild[e.Package] = e.FailedBuild
				}
				_, _ = fmt.Fprintf(w, "FAIL\t%s\t%.3fs%s\n", e.Package, e.Elapsed, why)
			}
		case "pass":
			if e.Test == "" {
				s.pkgs++
				_, _ = fmt.Fprintf(w, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
			}
		case "skip":
			if e.Test != "" {
				s.skipped = append(s.skipped, k)
			} else {
				s.pkgs++ // no test files
			}
		}
	}
	return s, sc.Err()
}

// report prints the failures and skips and says whether the run passed.
func (s *summary) report(w io.Writer, rawFile string) bool {
	var failedTests int
	for _, k := range s.failed {
		if k.test != "" {
			failedTests++
		}
	}
	for _, k := range s.failed {
		if k.test == "" && s.hasFailedTest(k.pkg) {
			continue // its failed tests' output says why
		}
		_, _ = fmt.Fprintf(w, "\n=== FAIL %s %s\n", k.pkg, cmp.Or(k.test, "(outside any test)"))
		for _, l := range s.output[k] {
			_, _ = io.WriteString(w, l)
		}
		if b, ok := s.failedBuild[k.pkg]; ok && k.test == "" {
			_, _ = io.WriteString(w, strings.Join(s.build[b], ""))
		}
	}
	if len(s.skipped) > 0 {
		_, _ = fmt.Fprintf(w, "\nskipped tests: %d; outside -short no test may skip (see test/testenv):\n", len(s.skipped))
		for _, k := range s.skipped {
			reason := ""
			for _, l := range s.output[k] {
				if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "=== ") && !strings.HasPrefix(t, "--- SKIP") {
					reason = t
					break
				}
			}
			_, _ = fmt.Fprintf(w, "  SKIP %s %s: %s\n", k.pkg, k.test, reason)
		}
	}
	ok := len(s.failed) == 0 && len(s.skipped) == 0
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
	}
	_, _ = fmt.Fprintf(w, "\n%s: %d packages, failed tests: %d, skipped tests: %d", verdict, s.pkgs, failedTests, len(s.skipped))
	if rawFile != "" {
		_, _ = fmt.Fprintf(w, " (full JSON: %s)", rawFile)
	}
	_, _ = fmt.Fprintln(w)
	return ok
}

// hasFailedTest says whether a test of pkg failed.
func (s *summary) hasFailedTest(pkg string) bool {
	return slices.ContainsFunc(s.failed, func(o key) bool { return o.pkg == pkg && o.test != "" })
}
