// Package cli is tokenstore's command line and composition root: it reads
// the configuration (settings.go holds the table of settings), builds the fx
// application (wiring.go: the only graph, and the only fx in the module),
// and implements the serve, migrate, keys, callers and version commands.
// It lives apart from package main so that tests can start whole instances.
package cli
