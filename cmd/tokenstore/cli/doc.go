// Package cli is tokenstore's command line and composition root: it reads
// the configuration, builds the fx application from each package's Module,
// and implements the serve, migrate, keys, callers and version commands.
// It lives apart from package main so that tests can start whole instances.
package cli
