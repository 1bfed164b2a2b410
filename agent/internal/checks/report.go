package checks

import (
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/certs"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Bounds the control plane enforces on a health report (a report past
// them ends the control stream), kept here with a margin.
const (
	maxReportChecks     = 64
	maxReportContainers = 64
	maxNameLen          = 200  // check names
	maxFieldLen         = 170  // each of six container fields, 1024 bytes together
	maxMessageLen       = 4000 // check messages, task messages
	maxCertNames        = 64   // names of the served certificate
	maxMeasurements     = 16   // per check
	maxMeasurementName  = 64
)

// Proto returns the status as the API's CheckStatus.
func (s Status) Proto() forlockv1.CheckStatus {
	switch s {
	case OK:
		return forlockv1.CheckStatus_CHECK_STATUS_OK
	case Warn:
		return forlockv1.CheckStatus_CHECK_STATUS_WARN
	case Critical:
		return forlockv1.CheckStatus_CHECK_STATUS_CRITICAL
	}
	return forlockv1.CheckStatus_CHECK_STATUS_UNKNOWN
}

// Proto returns the report as the API's HealthReport, cut to the bounds
// the control plane accepts. The served certificate's source is left
// unset: the control plane knows what it installed.
func (r Report) Proto() *forlockv1.HealthReport {
	h := &forlockv1.HealthReport{CheckedAt: timestamppb.New(r.CheckedAt), Certificate: certs.Proto(r.Certificate)}
	if c := h.Certificate; c != nil {
		c.Subject, c.Issuer = clip(c.Subject, maxMessageLen), clip(c.Issuer, maxMessageLen)
		c.Names = c.Names[:min(len(c.Names), maxCertNames)]
		for i, n := range c.Names {
			c.Names[i] = clip(n, maxNameLen)
		}
	}
	for _, res := range r.Results[:min(len(r.Results), maxReportChecks)] {
		c := &forlockv1.CheckResult{
			Name:    clip(res.Name, maxNameLen),
			Status:  res.Status.Proto(),
			Message: clip(res.Summary, maxMessageLen),
		}
		for _, m := range res.Measurements[:min(len(res.Measurements), maxMeasurements)] {
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) || m.Name == "" {
				continue // the control plane refuses a report with one
			}
			c.Measurements = append(c.Measurements, &forlockv1.Measurement{
				Name: clip(m.Name, maxMeasurementName), Value: m.Value, Subject: clip(m.Subject, maxNameLen),
			})
		}
		h.Checks = append(h.Checks, c)
	}
	for _, c := range r.Containers {
		if !c.Found {
			continue
		}
		if len(h.Containers) == maxReportContainers {
			break
		}
		cs := &forlockv1.ContainerStatus{
			Name:         clip(c.Name, maxFieldLen),
			Service:      clip(c.Service, maxFieldLen),
			State:        clip(c.State, maxFieldLen),
			Health:       clip(c.Health, maxFieldLen),
			RestartCount: uint32(min(max(c.RestartCount, 0), math.MaxUint32)), //nolint:gosec // clamped
			Image:        clip(c.Image, maxFieldLen),
			ImageDigest:  clip(c.ImageDigest, maxFieldLen),
		}
		if !c.StartedAt.IsZero() && c.State == "running" {
			cs.StartedAt = timestamppb.New(c.StartedAt)
		}
		if st := c.Stats; st != nil {
			cs.CpuPercent, cs.MemoryBytes, cs.MemoryLimitBytes = st.CPUPercent, st.MemoryBytes, st.MemoryLimitBytes
		}
		h.Containers = append(h.Containers, cs)
	}
	return h
}

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
