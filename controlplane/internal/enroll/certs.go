package enroll

import "time"

// Grace limits: how long the certificate before a renewal stays valid.
const (
	DefaultGrace = 5 * time.Minute
	MaxGrace     = 10 * time.Minute
)

// Certs are the certificates that may speak for a node in its current
// epoch: the newest one issued, and the one before it until PreviousUntil
// (the registry ends that grace early once the node connects with the
// newest one).
type Certs struct {
	Newest        string    // serial, hex
	Previous      string    // serial, hex; "" if none
	PreviousUntil time.Time // end of Previous's grace
}

// Check returns nil if the certificate with serial may speak for the node
// at now, else ErrSuperseded.
func (c Certs) Check(serial string, now time.Time) error {
	switch {
	case serial != "" && serial == c.Newest:
		return nil
	case serial != "" && serial == c.Previous && now.Before(c.PreviousUntil):
		return nil
	}
	return ErrSuperseded
}

// Renewed returns the certificates after next was issued on a call
// authenticated by from (which passed Check). Renewing from the newest
// certificate starts its grace; renewing again from the previous one (the
// agent never got the answer) keeps its grace where it was, so retries
// cannot stretch it.
func (c Certs) Renewed(from, next string, now time.Time, grace time.Duration) Certs {
	if from == c.Newest {
		return Certs{Newest: next, Previous: from, PreviousUntil: now.Add(grace)}
	}
	return Certs{Newest: next, Previous: c.Previous, PreviousUntil: c.PreviousUntil}
}
