package ports

import (
	"context"
	"time"
)

// DatabaseClock reads the database's clock, by which leases, back-offs and
// the worker's claims are judged, so the service can measure how far its
// own clock is from it (app.SkewMonitor).
type DatabaseClock interface {
	// DatabaseNow is the database's clock_timestamp().
	DatabaseNow(ctx context.Context) (time.Time, error)
}
