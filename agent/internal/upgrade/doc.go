// Package upgrade replaces the containers of a node's Forlock stack with
// new images as one transaction, and puts the previous ones back when
// anything fails.
//
// A Release records, per service (postgres, redis, api, nginx), the
// container's name, the image it runs (reference, image ID, repository
// digest) and its full create configuration, so that the same containers
// can be created again: environment, labels, mounts and volumes, ports,
// networks with their aliases, restart policy and healthcheck. Releases are
// JSON, for the node's release history.
//
// Upgrade pulls every new image first (a failed pull changes nothing),
// then, service by service in dependency order: stops the container,
// renames it to <name>.forlock-prev, creates a container of the same name
// from the same configuration with the new image, connects its networks
// with the same aliases, starts it and waits until it is healthy (its
// Docker healthcheck, or running for images without one, plus an optional
// caller's check such as the guide's API health). On any failure the new
// containers are removed and the previous ones renamed back, started and
// waited for; on success the previous containers are removed. Rollback
// returns the services to the exact image IDs of a recorded Release with
// the same gate. A container found stopped is replaced by a started one
// (the gate needs it running); after a failure it is left stopped, as found.
//
// What the new container inherits: the old container's configuration minus
// the values it got from its old image (environment entries, labels,
// command, entrypoint, healthcheck, exposed ports, volumes, user, working
// directory equal to the image's), so the new image's defaults apply, as
// with docker compose. Host ports Docker picked at random are kept. Volumes
// are never removed, and anonymous volumes are handed to the new container.
//
// Crash safety: a <name>.forlock-prev container at the start of Upgrade or
// Rollback means an earlier run was interrupted before it committed; it is
// put back (the container under <name>, if any, is taken to be that run's
// new one and removed) before anything else happens. A crash in the final
// step, while the previous containers are removed, therefore rolls back the
// services whose previous container was still there.
//
// The task: Handler runs the upgrade and rollback tasks on an Upgrader. An
// upgrade backs up first (the agent's backup handler, with the task's
// keys; a failed backup upgrades nothing), a rollback picks its target in
// the node's History (releases.json in the state directory, the newest 20
// releases, whole, named by Release.ID, a hash of the image IDs). The
// releases before and after are recorded and reported with the time the
// API did not answer, polled every 100 ms.
//
// PostgreSQL: a data directory cannot be used by another major version, so
// swapping images cannot undo a major upgrade. When both images tell their
// major version (PG_MAJOR, PG_VERSION or /usr/lib/postgresql/N in PATH),
// a change is refused before anything is touched.
package upgrade
