// Command attacker is a hostile agent for the end-to-end tests: with the key
// and certificate stolen from an agent's state dir it opens that node's
// control stream over real TLS and floods it. It reads commands on stdin:
// "flood" sends the plan's RUNNING updates with 4 KB of progress as fast as
// the stream takes them and answers "flooded <duration>"; "heartbeats"
// sends heartbeats until the control plane closes the stream and answers
// "closed <status code>". Only the tests build it, without -race, so it
// floods as fast as a real attacker would.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// planEnv holds the plan, in JSON.
const planEnv = "FORLOCK_ATTACK_PLAN"

// plan is what to do, with whose identity.
type plan struct {
	Addr, CAFile, StateDir string
	// Task is a running task of the node's, FinishedTask one of a finished
	// job; Updates is how many RUNNING updates to send on "flood" (one in
	// 100 names FinishedTask instead).
	Task, FinishedTask string
	Updates            int
}

func main() {
	if err := attack(os.Getenv(planEnv), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "attacker:", err)
		os.Exit(1)
	}
}

func attack(raw string, in io.Reader, out io.Writer) error {
	var p plan
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return fmt.Errorf("%s: %w", planEnv, err)
	}
	stream, err := stolenStream(p)
	if err != nil {
		return err
	}
	// Drain assignments and pings. This goroutine is the stream's only
	// reader: the status the stream ended with comes out of ended (a second
	// Recv elsewhere would race it and could wait for ever).
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	fmt.Fprintln(out, "connected")
	progress := strings.Repeat("x", 4096)
	var sent uint64 // over all floods: the last one's bytes_done is the count less one
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "flood":
			start := time.Now()
			for i := range p.Updates {
				sent++
				u := &forlockv1.TaskUpdate{TaskId: p.Task, State: forlockv1.TaskState_TASK_STATE_RUNNING,
					Progress: &forlockv1.Progress{Phase: "dump", BytesDone: sent - 1, Message: progress}}
				if i%100 == 0 {
					u = &forlockv1.TaskUpdate{TaskId: p.FinishedTask, State: forlockv1.TaskState_TASK_STATE_FAILED, Message: progress}
					if i%200 == 0 {
						u.State, u.Progress = forlockv1.TaskState_TASK_STATE_RUNNING, &forlockv1.Progress{Message: progress}
					}
				}
				if err := stream.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_TaskUpdate{TaskUpdate: u}}); err != nil {
					return fmt.Errorf("flood cut after %d updates: %w", i, err)
				}
			}
			fmt.Fprintln(out, "flooded", time.Since(start))
		case "heartbeats":
			var err error
			for err == nil {
				err = stream.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Heartbeat{Heartbeat: &forlockv1.Heartbeat{}}})
			}
			if errors.Is(err, io.EOF) {
				err = <-ended // the status the stream ended with
			}
			fmt.Fprintln(out, "closed", status.Code(err))
		}
	}
	return sc.Err()
}

// stolenStream opens the control stream with the key and certificate from
// an agent's state dir, over real TLS, and says hello as that agent would.
func stolenStream(p plan) (grpc.BidiStreamingClient[forlockv1.ConnectRequest, forlockv1.ConnectResponse], error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(p.StateDir, "node.crt"), filepath.Join(p.StateDir, "node.key"))
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(p.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS13})))
	if err != nil {
		return nil, err
	}
	stream, err := forlockv1.NewAgentServiceClient(conn).Connect(context.Background())
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Hello{Hello: &forlockv1.AgentHello{
		AgentVersion: "evil", Capabilities: []string{"heartbeat.v1", "tasks.v1"}}}}); err != nil {
		return nil, err
	}
	m, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("hello refused: %w", err)
	}
	if m.GetHello() == nil {
		return nil, fmt.Errorf("got %v instead of the server's hello", m)
	}
	return stream, nil
}
