// Package vault is the control plane's HashiCorp Vault client: it logs in
// (token, token file or AppRole), keeps its token alive, and uses three
// secrets engines:
//
//   - PKI issues the TLS certificates of the nodes' nginx (IssueCertificate):
//     ECDSA P-256, 90 days unless asked otherwise.
//   - KV version 2 holds certificates that another tool, e.g. certbot, put
//     there (ReadCertificate; fields KVFieldCertificate, KVFieldPrivateKey,
//     KVFieldCAChain).
//   - Transit wraps backup data keys (Transit, a keys.Wrapper with key IDs
//     vault-transit:<key>:v<n>, and Rewrap after a key rotation).
//
// Failures wrap one of ErrSealed, ErrUnreachable, ErrForbidden, ErrNotFound,
// ErrInvalid or ErrNotConfigured, with a message that says what to do. No
// token, secret ID or private key appears in an error or a log line. The
// token and secret-ID files must be private to their owner (secretfile), and
// a plain http:// address is refused unless it is loopback or
// Config.AllowInsecureHTTP says so: the token would travel in clear.
//
// A policy for the control plane's token, with the default mounts, a PKI
// role "node" and a Transit key "backup":
//
//	path "pki/issue/node"                      { capabilities = ["update"] }
//	path "secret/data/nginx/*"                 { capabilities = ["read"] }
//	path "transit/keys/backup"                 { capabilities = ["read"] }
//	path "transit/encrypt/backup"              { capabilities = ["update"] }
//	path "transit/decrypt/backup"              { capabilities = ["update"] }
//	path "transit/rewrap/backup"               { capabilities = ["update"] }
//	path "transit/datakey/plaintext/backup"    { capabilities = ["update"] }
//
// The PKI role needs key_type=ec, key_bits=256 and max_ttl of at least 2160h,
// and the PKI mount a max lease TTL at least as long (Vault's default is 768h,
// which would cap certificates at 32 days): vault secrets tune
// -max-lease-ttl=87600h pki.
package vault
