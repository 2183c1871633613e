package cli

import "time"

// SetLogFlushEvery sets how long a log line may wait in a LogStream made
// after the call, and returns the function that restores it. Only tests
// that are not parallel call it.
func SetLogFlushEvery(d time.Duration) (restore func()) {
	old := logFlushEvery
	logFlushEvery = d
	return func() { logFlushEvery = old }
}

// WithLogStream is withLogStream, for tests that build the graph.
var WithLogStream = withLogStream
