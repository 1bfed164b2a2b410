// Package certs installs a TLS certificate and its private key into the
// node's nginx container, safely: the operations guide's certificate
// renewal (ECDSA P-256, renew, reload nginx) as one task that either ends
// with nginx serving the new certificate or leaves the old one in place.
//
// Install runs these steps and stops at the first that fails:
//
//	Validate        parse the pair; ECDSA P-256; key matches the certificate;
//	                valid now; covers every expected name; chain in order and
//	                verifying up to its root
//	read old pair   out of the container, kept in memory only, for rollback
//	write           each file to a temporary name in its own directory, then
//	                rename it over the old one (owner root, key mode 0600)
//	nginx -t        on failure: put the old files back, fail with nginx's words
//	nginx -s reload
//	confirm         TLS handshakes with the published 443 until nginx serves
//	                exactly the new leaf; if it never does in time: put the old
//	                files back, reload, confirm the old leaf, fail
//
// The files written are the parsed certificates and key re-encoded as plain
// PEM (leaf, then chain), so nginx reads exactly what was validated. Private
// keys never appear in logs or errors, and Pair's formatting hides them.
//
// Served reads the certificate nginx serves right now, for inventory and
// expiry reporting.
//
// The container needs sh, mv, rm and nginx (any Debian or Alpine nginx image
// has them). Install is not safe to run twice at once against the same
// container; the agent runs one certificate task at a time.
package certs
