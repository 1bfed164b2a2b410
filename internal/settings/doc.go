package settings

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Markdown renders the table for the operator docs: key, flag, environment
// variable, default and help of every setting.
func (t *Table) Markdown() string {
	var b strings.Builder
	b.WriteString("| file key | flag | environment | default | |\n|---|---|---|---|---|\n")
	code := func(s string) string {
		if s == "" {
			return ""
		}
		return "`" + s + "`"
	}
	for _, s := range t.Settings {
		key, flag := code(s.Key), code("--"+s.FlagName())
		if s.Secret != "" {
			key = "never: " + key
		}
		if s.FlagName() == "" {
			flag = "none (a secret)"
		}
		help := strings.ReplaceAll(s.Help, "|", `\|`)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", key, flag, code(t.EnvName(s)), code(s.Default), help)
	}
	return b.String()
}

// SyncDoc checks that the file at path holds Markdown between the lines
// "<!-- settings: NAME -->" and "<!-- /settings: NAME -->"; with update it
// writes it there instead.
func (t *Table) SyncDoc(path string, update bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := fmt.Sprintf("<!-- settings: %s -->\n", t.Name), fmt.Sprintf("<!-- /settings: %s -->", t.Name)
	i, j := bytes.Index(data, []byte(begin)), bytes.Index(data, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q ... %q section", path, strings.TrimSpace(begin), end)
	}
	i += len(begin)
	want := t.Markdown()
	if string(data[i:j]) == want {
		return nil
	}
	if !update {
		return fmt.Errorf("%s: the %s settings table is not the one the code declares: run go test -run %s -update", path, t.Name, "TestSettingsTableComplete")
	}
	out := append(append(append([]byte{}, data[:i]...), want...), data[j:]...)
	return os.WriteFile(path, out, 0o644) //nolint:gosec // a doc in the repository
}
