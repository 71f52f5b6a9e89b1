// Package engine owns talking to Docker: it observes the Compose projects on
// the local engine, converges one project to a rendered model and waits for
// its health, and takes a project down. It is the only package that imports
// the Docker Compose SDK (used in-process, never `docker compose`) and the
// Docker client.
//
// It works on compose-go projects and the observed types of package plan;
// it must not import reconcile, state or source, and it decides nothing:
// what to apply, and whether a project may be touched at all, is the
// caller's business.
package engine
