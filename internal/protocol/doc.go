// Package protocol names what the agent and the control plane agree on over
// the Connect stream besides the protobuf messages themselves: the job kinds
// (the names of the JobSpec oneof fields) and the capabilities each side
// announces in its hello. Both binaries and the CLI import it, so a kind or a
// capability is spelled once; the strings are the wire values and never
// change.
//
// kinds is the one table of the job kinds: for each, the capability an agent
// must announce to be assigned it and whether it changes or removes data a
// node cannot get back by running it again (Destructive). KindOf derives a
// spec's kind. Adding a job kind: add the oneof field to JobSpec, a Kind
// constant and a row here (TestEveryJobSpecCaseHasAKind fails until both
// exist), then the agent handler and the control plane's validation.
package protocol
