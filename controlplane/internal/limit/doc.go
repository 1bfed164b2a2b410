// Package limit holds the control plane's per-client-address limits, the
// ones that make an outsider's attempts cost us a bounded, cheap refusal:
//
//   - Failures counts failed authentications (admin token, join token,
//     client certificate) per address. After Max failures within Window the
//     address is blocked for Block: its wrong credentials are refused with
//     ResourceExhausted before any further work. A valid credential is never
//     counted or blocked, so one attacker cannot lock out the operators or
//     agents that share its address.
//   - Conns caps the TLS connections per address that did not present a
//     fleet client certificate. A connection with a verified client
//     certificate is exempt (a whole site's agents may sit behind one NAT
//     address), and so is a connection once a call on it carried a valid
//     credential (Trust).
//
// An address is the client's IPv4 address, or the /64 prefix of an IPv6
// address: one IPv6 host usually holds a whole /64 and could otherwise
// change address at every attempt (Key).
//
// Memory is bounded: Failures tracks at most MaxAddrs addresses and, when
// full, forgets the least recently seen one (its count restarts from zero).
// Conns tracks only open connections, which the handshake deadline and the
// process's file limit already bound.
package limit

import (
	"net"
	"net/netip"
)

// Key is the address a limit counts by: the IPv4 address, the /64 prefix of
// an IPv6 address, or the whole address string when it is not an IP (a Unix
// socket, a test pipe).
func Key(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.String()
}

// Host is a's IP address without the port, for log lines; the whole string
// when it is not host:port.
func Host(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
