package accesslog

import (
	"net/netip"
	"strings"
)

// maxHops bounds how far back an X-Forwarded-For list is read.
const maxHops = 16

// Proxies are the trusted proxies: the addresses whose X-Forwarded-For is
// believed.
type Proxies []netip.Prefix

// Contains reports whether a is a trusted proxy.
func (p Proxies) Contains(a netip.Addr) bool {
	for _, pr := range p {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// Client is the address a request counts against: nginx's $remote_addr,
// unless that is a trusted proxy and the line carries X-Forwarded-For; then
// the rightmost address of the list that is not a trusted proxy (as nginx's
// realip module with real_ip_recursive on). Everything left of it was
// written by the client and is not believed. An entry that is not an
// address stops the walk at the last proxy seen, so a forged list can only
// blame a trusted proxy, never a third party. A cut line (Cut) counts
// against $remote_addr.
func (e Entry) Client(trusted Proxies) netip.Addr {
	c := e.Remote
	if e.ForwardedFor == "" || !trusted.Contains(c) {
		return c
	}
	list := e.ForwardedFor
	for range maxHops {
		var hop string
		if i := strings.LastIndexByte(list, ','); i >= 0 {
			list, hop = list[:i], list[i+1:]
		} else {
			list, hop = "", list
		}
		a, err := netip.ParseAddr(strings.TrimSpace(hop))
		if err != nil {
			return c
		}
		c = a.Unmap()
		if !trusted.Contains(c) || list == "" {
			return c
		}
	}
	return c
}
