// Command loadgen simulates a fleet of agents against a control plane with
// the real protocol: each simulated agent enrolls with a join token (its own
// P-256 key and CSR), dials with its own client certificate and keeps a
// Connect stream with heartbeats that carry a realistic health report (the
// stock stack's checks with their measurements). It answers pings and
// refuses tasks. It runs in its own process so that the control plane's CPU
// and memory are measured alone; it is a test tool, not shipped.
//
//	loadgen --control-plane 127.0.0.1:7443 --ca-file ca.crt --token-file t \
//	        --agents 1000 --rate 100 --duration 2m
//
// It prints one line when every agent is online and one per failure class.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func main() {
	var (
		addr     = flag.String("control-plane", "", "control plane HOST:PORT")
		caFile   = flag.String("ca-file", "", "fleet CA (PEM)")
		tokFile  = flag.String("token-file", "", "join token file (one token with enough uses)")
		n        = flag.Int("agents", 100, "simulated agents")
		rate     = flag.Float64("rate", 0, "agents started per second; 0 starts all at once")
		prefix   = flag.String("prefix", "sim", "node name prefix")
		duration = flag.Duration("duration", 0, "run this long after all are online, then exit (0: until signalled)")
		sources  = flag.String("source-addrs", "", "comma-separated local addresses to dial from, e.g. 127.0.0.2,127.0.0.3")
	)
	flag.Parse()
	if *addr == "" || *caFile == "" || *tokFile == "" || *n < 1 {
		flag.Usage()
		os.Exit(64)
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		log.Fatalf("%s holds no PEM certificate", *caFile)
	}
	tok, err := os.ReadFile(*tokFile)
	if err != nil {
		log.Fatal(err)
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatal(err)
	}
	g := &gen{addr: *addr, roots: roots, serverName: host, token: strings.TrimSpace(string(tok))}
	if *sources != "" {
		g.sources = strings.Split(*sources, ",")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range *n {
		if *rate > 0 && i > 0 {
			select {
			case <-time.After(time.Duration(float64(time.Second) / *rate)):
			case <-ctx.Done():
			}
		}
		wg.Go(func() { g.run(ctx, i, fmt.Sprintf("%s-%05d", *prefix, i)) })
	}
	for g.online.Load() < int64(*n) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("online: %d agents in %.1f s (enroll retries %d, stream restarts %d)\n",
		g.online.Load(), time.Since(start).Seconds(), g.enrollRetries.Load(), g.restarts.Load())
	if *duration > 0 {
		select {
		case <-time.After(*duration):
		case <-ctx.Done():
		}
		stop()
	}
	wg.Wait()
}

type gen struct {
	addr, serverName, token string
	roots                   *x509.CertPool
	sources                 []string
	online                  atomic.Int64
	enrollRetries, restarts atomic.Int64
}

// dialer dials from the i-th source address, round robin.
func (g *gen) dialer(i int) grpc.DialOption {
	src := &net.TCPAddr{IP: net.ParseIP(g.sources[i%len(g.sources)])}
	d := &net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
	return grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) })
}

func (g *gen) conn(i int, cert *tls.Certificate) (*grpc.ClientConn, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: g.roots, ServerName: g.serverName}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg)), grpc.WithUserAgent("forlock-loadgen")}
	if len(g.sources) > 0 {
		opts = append(opts, g.dialer(i))
	}
	return grpc.NewClient(g.addr, opts...)
}

// run is one simulated agent: enroll until it has a certificate, then keep
// a control stream until ctx ends.
func (g *gen) run(ctx context.Context, i int, name string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	var cert *tls.Certificate
	for backoff := time.Second; cert == nil; backoff = min(2*backoff, 30*time.Second) {
		if cert, err = g.enroll(ctx, i, name, key); err == nil || ctx.Err() != nil {
			break
		}
		if g.enrollRetries.Add(1) <= 5 {
			log.Printf("%s: enroll: %v (retrying; only the first 5 failures are printed)", name, err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
	}
	if cert == nil {
		return
	}
	conn, err := g.conn(i, cert)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	first := true
	for ctx.Err() == nil {
		err := g.stream(ctx, conn, first)
		first = false
		if ctx.Err() != nil {
			return
		}
		g.restarts.Add(1)
		log.Printf("%s: control stream ended: %v", name, err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}

func (g *gen) enroll(ctx context.Context, i int, name string, key *ecdsa.PrivateKey) (*tls.Certificate, error) {
	csr, err := pki.CreateCSR(key, name)
	if err != nil {
		return nil, err
	}
	conn, err := g.conn(i, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := forlockv1.NewAgentServiceClient(conn).Enroll(cctx, &forlockv1.EnrollRequest{
		JoinToken: g.token, Name: name, Csr: csr, Facts: facts(name)})
	if err != nil {
		return nil, err
	}
	chain, err := pki.ParseCertsPEM(resp.GetCertificateChain())
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// stream keeps one Connect stream: hello, then a heartbeat per interval
// with a fresh health report; pings are answered, anything else ignored.
func (g *gen) stream(ctx context.Context, conn *grpc.ClientConn, first bool) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := forlockv1.NewAgentServiceClient(conn).Connect(sctx)
	if err != nil {
		return err
	}
	if err := st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Hello{Hello: &forlockv1.AgentHello{
		AgentVersion: "loadgen", Capabilities: []string{"heartbeat", "ping"}, Facts: facts("")}}}); err != nil {
		return err
	}
	resp, err := st.Recv()
	if err != nil {
		return err
	}
	hello := resp.GetHello()
	if hello == nil {
		return errors.New("no ServerHello first")
	}
	interval := max(hello.GetHeartbeatInterval().AsDuration(), 100*time.Millisecond)
	recv := make(chan *forlockv1.ConnectResponse)
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case recv <- m:
			case <-sctx.Done():
				return
			}
		}
	}()
	var seq uint64
	heartbeat := func() error {
		seq++
		return st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Heartbeat{Heartbeat: &forlockv1.Heartbeat{
			Seq: seq, Facts: facts(""), Health: report()}}})
	}
	if err := heartbeat(); err != nil {
		return err
	}
	if first {
		g.online.Add(1)
		defer g.online.Add(-1)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = st.CloseSend()
			return nil
		case err := <-recvErr:
			return err
		case m := <-recv:
			if p := m.GetPing(); p != nil {
				if err := st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Pong{Pong: &forlockv1.Pong{Nonce: p.GetNonce()}}}); err != nil {
					return err
				}
			}
		case <-tick.C:
			if err := heartbeat(); err != nil {
				return err
			}
		}
	}
}

func facts(hostname string) *forlockv1.HostFacts {
	return &forlockv1.HostFacts{Hostname: hostname, Os: "Debian GNU/Linux 12 (bookworm)", Kernel: "6.1.0-loadgen", Arch: "amd64", AgentVersion: "loadgen",
		MemoryTotalBytes: 16 << 30, MemoryAvailableBytes: 9 << 30, DiskTotalBytes: 200 << 30, DiskFreeBytes: 120 << 30}
}

// report is the stock stack's health report: 16 checks, with the
// measurements a real agent sends.
func report() *forlockv1.HealthReport {
	ok := forlockv1.CheckStatus_CHECK_STATUS_OK
	m := func(name string, v float64, subject string) []*forlockv1.Measurement {
		return []*forlockv1.Measurement{{Name: name, Value: v, Subject: subject}}
	}
	checks := []*forlockv1.CheckResult{
		{Name: "disk", Status: ok, Message: "60% free (120 GiB of 200 GiB)", Measurements: m("free_ratio", 0.6, "/var/lib/forlock-agent")},
		{Name: "disk/docker", Status: ok, Message: "60% free (120 GiB of 200 GiB)", Measurements: m("free_ratio", 0.6, "/var/lib/docker")},
		{Name: "disk/backup", Status: ok, Message: "60% free (120 GiB of 200 GiB)", Measurements: m("free_ratio", 0.6, "/var/backups/forlock")},
		{Name: "memory", Status: ok, Message: "44% used (7.0 GiB of 16 GiB)", Measurements: m("used_ratio", 0.44, "")},
		{Name: "cpu", Status: ok, Message: "12% busy", Measurements: m("used_ratio", 0.12, "")},
	}
	for _, c := range []string{"api", "postgres", "redis", "nginx"} {
		checks = append(checks, &forlockv1.CheckResult{Name: "container/forlock-" + c, Status: ok, Message: "running, healthy, up 3 days"})
	}
	checks = append(checks,
		&forlockv1.CheckResult{Name: "api", Status: ok, Message: "3 endpoints OK, p95 41 ms", Measurements: m("p95_seconds", 0.041, "")},
		&forlockv1.CheckResult{Name: "postgres", Status: ok, Message: "SELECT 1 in 2 ms, 12 of 100 connections",
			Measurements: []*forlockv1.Measurement{{Name: "connections", Value: 12}, {Name: "max_connections", Value: 100}}},
		&forlockv1.CheckResult{Name: "redis", Status: ok, Message: "PONG in 1 ms"},
		&forlockv1.CheckResult{Name: "certificate", Status: ok, Message: "expires in 62 days"},
		&forlockv1.CheckResult{Name: "logins", Status: ok, Message: "no failed logins in the last minute", Measurements: m("blocked_addresses", 0, "")},
	)
	return &forlockv1.HealthReport{CheckedAt: timestamppb.Now(), Checks: checks}
}
