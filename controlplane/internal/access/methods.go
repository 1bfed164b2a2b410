package access

// Caller is who may call a method.
type Caller int

// The callers.
const (
	// ByNobody: the method is refused (the zero value: a method missing from
	// Methods is refused).
	ByNobody Caller = iota
	// ByAnyone who reaches the port (health, reflection, Enroll, whose join
	// token is checked by its handler).
	ByAnyone
	// ByAgent: a node, by its mTLS client certificate.
	ByAgent
	// ByIdentity: an operator or program by its bearer token (an identity),
	// holding Rule.Permission.
	ByIdentity
)

// Rule is how one RPC is authorized and audited.
type Rule struct {
	Caller Caller
	// Permission a ByIdentity caller needs.
	Permission Permission
	// Mutating calls change state: each is audited, with its result, and
	// accepts a change reason.
	Mutating bool
	// Destructive calls need a reason when reasons are required
	// (audit.require_reason). SubmitJob is destructive by its job's kind
	// (protocol.Kind.Destructive), not here.
	Destructive bool
}

const v1 = "/forlock.v1."

// Methods is the rule of every RPC. An RPC missing here is refused for
// everyone, and TestEveryMethodHasARule fails.
var Methods = map[string]Rule{
	v1 + "AgentService/Enroll":           {Caller: ByAnyone, Mutating: true},
	v1 + "AgentService/Connect":          {Caller: ByAgent},
	v1 + "AgentService/RenewCertificate": {Caller: ByAgent, Mutating: true},
	v1 + "AgentService/PushLogs":         {Caller: ByAgent},

	v1 + "NodeService/ListNodes":       {Caller: ByIdentity, Permission: ReadFleet},
	v1 + "NodeService/GetNode":         {Caller: ByIdentity, Permission: ReadFleet},
	v1 + "NodeService/RemoveNode":      {Caller: ByIdentity, Permission: RemoveNodes, Mutating: true, Destructive: true},
	v1 + "NodeService/CreateJoinToken": {Caller: ByIdentity, Permission: ManageTokens, Mutating: true},
	v1 + "NodeService/ListJoinTokens":  {Caller: ByIdentity, Permission: ManageTokens},
	v1 + "NodeService/RevokeJoinToken": {Caller: ByIdentity, Permission: ManageTokens, Mutating: true},

	v1 + "JobService/SubmitJob": {Caller: ByIdentity, Permission: SubmitJobs, Mutating: true},
	v1 + "JobService/GetJob":    {Caller: ByIdentity, Permission: ReadFleet},
	v1 + "JobService/ListJobs":  {Caller: ByIdentity, Permission: ReadFleet},
	v1 + "JobService/WatchJob":  {Caller: ByIdentity, Permission: ReadFleet},
	v1 + "JobService/CancelJob": {Caller: ByIdentity, Permission: CancelJobs, Mutating: true},

	v1 + "LogService/StreamLogs": {Caller: ByIdentity, Permission: ReadLogs},

	v1 + "BackupService/ListRestorePoints":   {Caller: ByIdentity, Permission: ReadFleet},
	v1 + "BackupService/ListRecoveryWindows": {Caller: ByIdentity, Permission: ReadFleet},
	v1 + "BackupService/GetArtifact":         {Caller: ByIdentity, Permission: ReadFleet},
	v1 + "BackupService/RewrapKeys":          {Caller: ByIdentity, Permission: ManageKeys, Mutating: true, Destructive: true},

	v1 + "CertService/ListCertificates": {Caller: ByIdentity, Permission: ReadFleet},

	v1 + "ControlPlaneService/GetStatus": {Caller: ByIdentity, Permission: ReadFleet},
	// SaveSnapshot changes nothing, but it hands out every key the control
	// plane holds (encrypted): its handler audits it.
	v1 + "ControlPlaneService/SaveSnapshot": {Caller: ByIdentity, Permission: SnapshotControlPlane},

	v1 + "AccessService/CreateIdentity": {Caller: ByIdentity, Permission: ManageAccess, Mutating: true},
	v1 + "AccessService/ListIdentities": {Caller: ByIdentity, Permission: ManageAccess},
	v1 + "AccessService/RevokeIdentity": {Caller: ByIdentity, Permission: ManageAccess, Mutating: true, Destructive: true},
	v1 + "AccessService/RotateIdentity": {Caller: ByIdentity, Permission: ManageAccess, Mutating: true},
	v1 + "AccessService/WhoAmI":         {Caller: ByIdentity, Permission: ReadFleet},

	v1 + "AuditService/ListAuditRecords": {Caller: ByIdentity, Permission: ReadAudit},
	v1 + "AuditService/VerifyAudit":      {Caller: ByIdentity, Permission: ReadAudit},

	v1 + "AlertService/ListAlerts": {Caller: ByIdentity, Permission: ReadFleet},

	"/grpc.health.v1.Health/Check":                                   {Caller: ByAnyone},
	"/grpc.health.v1.Health/Watch":                                   {Caller: ByAnyone},
	"/grpc.health.v1.Health/List":                                    {Caller: ByAnyone},
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {Caller: ByAnyone},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {Caller: ByAnyone},
}

// RuleFor returns the rule of a full method name; the zero Rule (ByNobody)
// for a method not in the table.
func RuleFor(fullMethod string) Rule { return Methods[fullMethod] }
