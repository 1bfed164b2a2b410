package loopback

import "testing"

func TestHostAndAddr(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.8.9.1": true, "::1": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "localhost.example.com": false, "example.com": false} {
		if got := Host(host); got != want {
			t.Errorf("Host(%q) = %v, want %v", host, got, want)
		}
		if got := Addr(bracket(host) + ":9090"); got != want {
			t.Errorf("Addr(%q:9090) = %v, want %v", host, got, want)
		}
	}
	if Addr("127.0.0.1") {
		t.Error("an address without a port is not one")
	}
}

// bracket brackets an IPv6 host for an address.
func bracket(host string) string {
	for _, c := range host {
		if c == ':' {
			return "[" + host + "]"
		}
	}
	return host
}
