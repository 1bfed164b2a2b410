// Package loopback tells whether a host stays on this machine, for the
// settings that allow plain http or no credential only on loopback.
package loopback

import (
	"net"
	"strings"
)

// Host reports whether host is localhost or a loopback IP address.
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Addr reports whether addr (host:port) is on loopback only; an empty
// host or a wildcard is every interface.
func Addr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && Host(host)
}
