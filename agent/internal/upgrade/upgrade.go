package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// Services are the node's services in dependency order: an upgrade
// replaces them in this order and a rollback restores them in reverse.
var Services = []string{"postgres", "redis", "api", "nginx"}

// PrevSuffix is appended to a container's name while its replacement is
// on trial.
const PrevSuffix = ".forlock-prev"

// Defaults of Config and Options.
const (
	DefaultHealthTimeout = 2 * time.Minute
	DefaultStopTimeout   = 30 * time.Second
	DefaultPollInterval  = 250 * time.Millisecond
	// restoreTimeout bounds putting the previous containers back once the
	// caller's context has ended.
	restoreTimeout = 5 * time.Minute
)

// Errors callers tell apart.
var (
	// ErrBusy: an upgrade or rollback is already running on this node.
	ErrBusy = errors.New("an upgrade or rollback is already running on this node")
	// ErrPull: a new image could not be pulled; nothing was changed.
	ErrPull = errors.New("pull failed")
	// ErrPostgresMajor: the PostgreSQL major version would change.
	ErrPostgresMajor = errors.New("postgresql major version change")
	// ErrRestore: after a failure the previous containers could not all
	// be put back; the node needs an operator.
	ErrRestore = errors.New("previous containers could not be restored")
)

// Docker is what the engine must do for an upgrade; dockerrt.Runtime is
// one.
type Docker interface {
	InspectContainer(ctx context.Context, nameOrID string) (container.InspectResponse, error)
	InspectImage(ctx context.Context, ref string) (image.InspectResponse, error)
	PullImage(ctx context.Context, ref string, auth dockerrt.RegistryAuth) error
	CreateContainer(ctx context.Context, name string, spec dockerrt.CreateSpec) (string, error)
	ConnectNetwork(ctx context.Context, net, id string, ep *network.EndpointSettings) error
	RenameContainer(ctx context.Context, id, newName string) error
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RemoveContainer(ctx context.Context, id string) error
}

// Config configures an Upgrader.
type Config struct {
	// Docker is the node's engine. Required.
	Docker Docker
	// Containers maps a service to its container name; a service not in
	// the map is "forlock-<service>", as in the operations guide.
	Containers map[string]string
	// StopTimeout is how long a container gets to stop before the engine
	// kills it. Default DefaultStopTimeout.
	StopTimeout time.Duration
	// PollInterval is how often health is read. Default
	// DefaultPollInterval.
	PollInterval time.Duration
	// Log receives one line per step; nil discards.
	Log *slog.Logger
}

// Upgrader upgrades and rolls back one node's containers. Its methods may
// be called concurrently; all but one fail with ErrBusy while one runs.
type Upgrader struct {
	cfg  Config
	busy sync.Mutex
}

// New validates cfg and returns an Upgrader.
func New(cfg Config) (*Upgrader, error) {
	if cfg.Docker == nil {
		return nil, errors.New("upgrade: Config.Docker is required")
	}
	for svc, name := range cfg.Containers {
		if !slices.Contains(Services, svc) {
			return nil, fmt.Errorf("upgrade: unknown service %q in Config.Containers (want %s)", svc, strings.Join(Services, ", "))
		}
		if name == "" || strings.ContainsAny(name, " /\t\n") {
			return nil, fmt.Errorf("upgrade: container name %q of %s: want a container name", name, svc)
		}
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Upgrader{cfg: cfg}, nil
}

// HealthFunc is a caller's health check of service once its container is
// healthy, such as the guide's GET /api/v1/health for the API; it is
// retried until it passes or the health timeout ends.
type HealthFunc func(ctx context.Context, service string) error

// Event is one step, for progress reports.
type Event struct {
	// Service is the service concerned; empty for the whole node.
	Service string
	// Step is pull, stop, create, start, health, healthy, restore,
	// recover, commit or skip.
	Step string
	// Message says what happens, for people.
	Message string
}

// Options are the settings shared by Upgrade and Rollback.
type Options struct {
	// Auth are the registry credentials for pulls; zero pulls
	// anonymously.
	Auth dockerrt.RegistryAuth
	// HealthTimeout bounds the wait for each new container to be
	// healthy. Default DefaultHealthTimeout.
	HealthTimeout time.Duration
	// Health is an extra check after the container's own; nil for none.
	Health HealthFunc
	// Progress receives each step; nil for none. It is called on the
	// upgrading goroutine and must return quickly.
	Progress func(Event)
}

// Spec is one upgrade.
type Spec struct {
	// Services to upgrade; empty means all of Services. They are upgraded
	// in dependency order whatever the order given.
	Services []string
	// Target is a tag (v2) or a digest (sha256:...): each service's new
	// image is its current image's repository at Target.
	Target string
	Options
}

// Result is how an upgrade or rollback ended.
type Result struct {
	// Before is the release found at the start (after any recovery);
	// After the release at the end.
	Before, After Release
	// Changed are the services whose containers were replaced and kept.
	Changed []string
	// Unchanged are the services that already ran the wanted image.
	Unchanged []string
	// RolledBack is true when a replacement failed and the previous
	// containers were put back; Reason says what failed.
	RolledBack bool
	Reason     string
	// Recovered are the services put back from an interrupted earlier
	// run before this one started.
	Recovered []string
	// Warnings are problems that did not stop the run, such as a previous
	// container that could not be removed.
	Warnings []string
}

// name is the container name of service.
func (u *Upgrader) name(service string) string {
	if n, ok := u.cfg.Containers[service]; ok {
		return n
	}
	return "forlock-" + service
}

// Current reads the node's release from the engine: every service's
// container, image and configuration.
func (u *Upgrader) Current(ctx context.Context) (Release, error) {
	rel := Release{RecordedAt: time.Now().UTC()}
	for _, svc := range Services {
		sr, _, err := u.inspect(ctx, svc)
		if err != nil {
			return Release{}, err
		}
		rel.Services = append(rel.Services, sr)
	}
	return rel, nil
}

// inspect records one service and returns its container's inspection.
func (u *Upgrader) inspect(ctx context.Context, service string) (ServiceRelease, container.InspectResponse, error) {
	name := u.name(service)
	c, err := u.cfg.Docker.InspectContainer(ctx, name)
	if dockerrt.IsNotFound(err) {
		return ServiceRelease{}, c, fmt.Errorf("%s: no container %s: start the node's stack (docker compose up -d) or configure the container names", service, name)
	}
	if err != nil {
		return ServiceRelease{}, c, fmt.Errorf("%s: %w", service, err)
	}
	img, err := u.cfg.Docker.InspectImage(ctx, c.Image)
	if err != nil {
		return ServiceRelease{}, c, fmt.Errorf("%s: image of container %s: %w", service, name, err)
	}
	sr, err := record(service, c, img)
	return sr, c, err
}

// services checks and orders the services of a spec.
func services(want []string) ([]string, error) {
	if len(want) == 0 {
		return slices.Clone(Services), nil
	}
	for _, s := range want {
		if !slices.Contains(Services, s) {
			return nil, fmt.Errorf("unknown service %q: want %s", s, strings.Join(Services, ", "))
		}
	}
	return slices.DeleteFunc(slices.Clone(Services), func(s string) bool { return !slices.Contains(want, s) }), nil
}

func (o *Options) defaults() {
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = DefaultHealthTimeout
	}
}

func (u *Upgrader) emit(o Options, service, step, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	u.cfg.Log.Info(msg, "service", service, "step", step)
	if o.Progress != nil {
		o.Progress(Event{Service: service, Step: step, Message: msg})
	}
}

// Upgrade replaces the spec's services with their images at spec.Target,
// as the package comment describes. A failure before any container was
// touched (a bad target, a failed pull) is an error and changes nothing.
// A failure after is undone: the result has RolledBack and Reason, and the
// error is nil, unless the previous containers could not be restored
// (ErrRestore).
func (u *Upgrader) Upgrade(ctx context.Context, spec Spec) (Result, error) {
	if !u.busy.TryLock() {
		return Result{}, ErrBusy
	}
	defer u.busy.Unlock()
	spec.defaults()
	if err := checkTarget(spec.Target); err != nil {
		return Result{}, err
	}
	svcs, err := services(spec.Services)
	if err != nil {
		return Result{}, err
	}
	var res Result
	if res.Recovered, err = u.recover(ctx, spec.Options); err != nil {
		return res, err
	}
	if res.Before, err = u.Current(ctx); err != nil {
		return res, err
	}

	// Pull everything first: a registry problem must change nothing.
	var plan []step
	for _, svc := range svcs {
		cur, _ := res.Before.Service(svc)
		repo, err := sourceRepository(cur)
		if err != nil {
			return res, err
		}
		ref := withTarget(repo, spec.Target)
		u.emit(spec.Options, svc, "pull", "pulling %s", ref)
		if err := u.cfg.Docker.PullImage(ctx, ref, spec.Auth); err != nil {
			return res, pullError(ref, spec.Auth, err)
		}
		img, err := u.cfg.Docker.InspectImage(ctx, ref)
		if err != nil {
			return res, fmt.Errorf("%s: %w", svc, err)
		}
		if img.ID == cur.ImageID {
			u.emit(spec.Options, svc, "skip", "%s already runs %s", cur.Container, ref)
			res.Unchanged = append(res.Unchanged, svc)
			continue
		}
		if err := checkPostgres(cur, ref, img); err != nil {
			return res, err
		}
		plan = append(plan, step{service: svc, src: cur, ref: ref, imageID: img.ID})
	}
	return u.run(ctx, plan, res, spec.Options)
}

// pullError says which registry failed and what to check.
func pullError(ref string, auth dockerrt.RegistryAuth, err error) error {
	creds := "no credentials were given"
	if auth.Username != "" {
		creds = fmt.Sprintf("user %q", auth.Username)
	}
	return fmt.Errorf("%w from registry %s (%s): %w; check that the registry is reachable from the node, that %s exists and that the agent's registry credentials are right; nothing was changed",
		ErrPull, dockerrt.RegistryHost(ref), creds, err, ref)
}

// checkPostgres refuses a PostgreSQL major version change.
func checkPostgres(cur ServiceRelease, ref string, img image.InspectResponse) error {
	next := postgresMajor(defaultsOf(img).Env)
	if cur.PostgresMajor == "" || next == "" || cur.PostgresMajor == next {
		return nil
	}
	return fmt.Errorf("%w: %s runs PostgreSQL %s and %s is PostgreSQL %s; a major upgrade needs pg_upgrade or a dump and restore and cannot be undone by swapping images: follow the guide's major-upgrade procedure",
		ErrPostgresMajor, cur.Container, cur.PostgresMajor, ref, next)
}
