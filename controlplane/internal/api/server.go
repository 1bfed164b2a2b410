package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"

	"google.golang.org/grpc"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Authenticator is the authentication step of the interceptor chain
// (auth.Checker).
type Authenticator interface {
	Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error)
	Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error
}

// Interceptors returns the server options of the one interceptor chain every
// call passes, in this order: Recover (a panic becomes Internal), Log (one
// line per call, with the code), authn and authz (the Authenticator), then
// the audit of mutating calls. The control plane's server and the API tests
// both build their grpc.Server with it.
func Interceptors(log *slog.Logger, authn Authenticator, audit *Auditor) []grpc.ServerOption {
	recoverU, recoverS := Recover(log)
	logU, logS := Log(log)
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(recoverU, logU, authn.Unary, audit.Unary),
		grpc.ChainStreamInterceptor(recoverS, logS, authn.Stream),
	}
}

// ServerTLS is the control plane's TLS configuration: its certificate, and a
// client certificate verified against the fleet CA when one is given (agents
// send one; operators and Enroll do not, and are authenticated by token).
func ServerTLS(cert tls.Certificate, fleetCA *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    fleetCA,
		MinVersion:   tls.VersionTLS13,
	}
}

// Services are the handlers of the control plane's own gRPC services.
type Services struct {
	Agents       *AgentAPI
	Nodes        *NodeAPI
	Jobs         *JobAPI
	Logs         *LogAPI
	Backups      *BackupAPI
	Certs        *CertAPI
	ControlPlane *ControlPlaneAPI
	Access       *AccessAPI
	Audit        *AuditAPI
	Alerts       *AlertAPI
}

// Register registers every service on r.
func (s Services) Register(r grpc.ServiceRegistrar) {
	forlockv1.RegisterAgentServiceServer(r, s.Agents)
	forlockv1.RegisterLogServiceServer(r, s.Logs)
	forlockv1.RegisterBackupServiceServer(r, s.Backups)
	forlockv1.RegisterCertServiceServer(r, s.Certs)
	forlockv1.RegisterJobServiceServer(r, s.Jobs)
	forlockv1.RegisterNodeServiceServer(r, s.Nodes)
	forlockv1.RegisterControlPlaneServiceServer(r, s.ControlPlane)
	forlockv1.RegisterAccessServiceServer(r, s.Access)
	forlockv1.RegisterAuditServiceServer(r, s.Audit)
	forlockv1.RegisterAlertServiceServer(r, s.Alerts)
}
