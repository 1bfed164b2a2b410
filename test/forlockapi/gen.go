package main

import (
	"crypto/aes"
	"crypto/cipher"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Session is a login session as kept in Redis.
type Session struct {
	Token     string    `json:"token"`
	User      string    `json:"user"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	MFA       bool      `json:"mfa"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SessionTTL is how long a session lives.
const SessionTTL = 24 * time.Hour

// NewSession makes a session with a fresh random token.
func NewSession(user, ip, ua string, now time.Time) Session {
	tok := make([]byte, 24)
	_, _ = crand.Read(tok) // never fails (crypto/rand panics rather)
	return newSession(hex.EncodeToString(tok), user, ip, ua, now, true)
}

func newSession(token, user, ip, ua string, now time.Time, mfa bool) Session {
	return Session{
		Token: token, User: user, IP: ip, UserAgent: ua, MFA: mfa,
		CreatedAt: now.UTC(), ExpiresAt: now.Add(SessionTTL).UTC(),
	}
}

// Generator makes realistic vault items: owners with e-mail addresses, names
// of web services, and AES-256-GCM ciphertext of a JSON secret. A given seed
// gives the same sequence.
type Generator struct {
	r      *rand.Rand
	aead   cipher.AEAD
	owners []string
	base   time.Time
}

var (
	firstNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yasmin"}
	lastNames  = []string{"martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand", "leroy", "moreau", "simon", "laurent", "lefebvre", "michel", "garcia", "david"}
	domains    = []string{"example.com", "example.org", "example.net"}
	services   = []string{"GitHub", "GitLab", "AWS console", "Google Workspace", "Microsoft 365", "Slack", "Jira", "Confluence", "Bank", "Payroll", "VPN", "Wi-Fi office", "Database prod", "Database staging", "Grafana", "Kibana", "Docker Hub", "npm", "PyPI", "SSH bastion", "Router admin", "Email", "Zoom", "Figma", "Salesforce", "HR portal", "Expenses", "Domain registrar", "DNS provider", "Backup server"}
	agents     = []string{"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "ForlockMobile/2.3.1 (Android 14)", "ForlockMobile/2.3.1 (iOS 17.5)"}
)

const passwordChars = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!@#$%^&*-_=+"

// NewGenerator returns a generator with owners distinct owners.
func NewGenerator(seed uint64, owners int) *Generator {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	r := rand.New(rand.NewChaCha8(s))
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(r.Uint32())
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // 32-byte key: cannot fail
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	g := &Generator{r: r, aead: aead, base: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	seen := map[string]bool{}
	for len(g.owners) < owners {
		o := fmt.Sprintf("%s.%s@%s", firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))], domains[r.IntN(len(domains))])
		if seen[o] {
			o = fmt.Sprintf("%s%d@%s", strings.Split(o, "@")[0], len(g.owners), domains[r.IntN(len(domains))])
		}
		seen[o] = true
		g.owners = append(g.owners, o)
	}
	return g
}

func (g *Generator) word(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = passwordChars[g.r.IntN(len(passwordChars))]
	}
	return string(b)
}

// Item returns the next vault item: 300 B to about 4 KiB of ciphertext.
func (g *Generator) Item() Item {
	owner := g.owners[g.r.IntN(len(g.owners))]
	svc := services[g.r.IntN(len(services))]
	name := svc
	if g.r.IntN(3) == 0 {
		name = fmt.Sprintf("%s (%s)", svc, []string{"personal", "work", "admin", "read-only", "shared"}[g.r.IntN(5)])
	}
	secret := map[string]any{
		"username": strings.Split(owner, "@")[0],
		"password": g.word(12 + g.r.IntN(20)),
		"url":      "https://" + strings.ToLower(strings.ReplaceAll(svc, " ", "-")) + ".example.com/login",
		"notes":    g.word(g.r.IntN(3500)),
		"totp":     g.r.IntN(2) == 0,
	}
	plain, err := json.Marshal(secret)
	if err != nil {
		panic(err) // plain map of strings and bools
	}
	nonce := make([]byte, g.aead.NonceSize())
	for i := range nonce {
		nonce[i] = byte(g.r.Uint32())
	}
	ct := g.aead.Seal(nonce, nonce, plain, []byte(owner))
	created := g.base.Add(time.Duration(g.r.Int64N(int64(365 * 24 * time.Hour))))
	return Item{Owner: owner, Name: name, Ciphertext: ct, CreatedAt: created}
}

// Session returns a session of one of the generator's owners.
func (g *Generator) Session(now time.Time) Session {
	ip := fmt.Sprintf("10.%d.%d.%d", g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254))
	tok := make([]byte, 24)
	for i := range tok {
		tok[i] = byte(g.r.Uint32())
	}
	return newSession(hex.EncodeToString(tok), g.owners[g.r.IntN(len(g.owners))], ip, agents[g.r.IntN(len(agents))], now, g.r.IntN(10) < 8)
}
