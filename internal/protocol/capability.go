package protocol

// Capability is a feature named in an AgentHello or a ServerHello, e.g.
// "tasks.v1". A side ignores the capabilities it does not know.
type Capability string

// The capabilities. The control plane announces all of them; an agent
// announces heartbeats and pings always, and the others when it has them.
const (
	// CapabilityHeartbeat: the side sends and understands heartbeats (with
	// the agent's health report).
	CapabilityHeartbeat Capability = "heartbeat.v1"
	// CapabilityPing: the side answers pings.
	CapabilityPing Capability = "ping.v1"
	// CapabilityTasks: the agent runs tasks; the control plane assigns
	// tasks only to an agent that announced it (every Kind requires it).
	CapabilityTasks Capability = "tasks.v1"
	// CapabilityLogs: the agent can read container logs and serve a
	// LogRequest; announced only when it reaches Docker.
	CapabilityLogs Capability = "logs.v1"
)

// Strings returns capabilities as the strings of a hello message.
func Strings(caps ...Capability) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = string(c)
	}
	return out
}
