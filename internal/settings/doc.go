package settings

import (
	"fmt"
	"strings"

	"github.com/forlock/fleet/internal/docblock"
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
	return docblock.Sync(path, "settings: "+t.Name, t.Markdown(), update, "TestSettingsTableComplete")
}
