package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/tokenstore/tokenstore/adapters/eventjson"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// EventFeed is the pull feed GET /v1/events serves (*app.EventFeed).
type EventFeed interface {
	Events(ctx context.Context, f domain.EventFilter, after domain.EventCursor, limit int, wait time.Duration) ([]domain.Event, domain.EventCursor, error)
}

type eventFeed struct {
	feed    EventFeed
	maxWait time.Duration
}

// WithEventFeed serves GET /v1/events from feed, with waits up to maxWait
// (at most app.MaxEventWait; keep it below the write timeout, which cuts
// a longer answer off). Without it, the route answers 503.
func WithEventFeed(feed EventFeed, maxWait time.Duration) Option {
	return func(a *api) { a.events = &eventFeed{feed: feed, maxWait: min(max(maxWait, 0), app.MaxEventWait)} }
}

// eventQuery are GET /v1/events' query parameters.
var eventQuery = []string{"after", "limit", "wait"}

type eventsBody struct {
	Events []eventjson.Event `json:"events"`
	Next   string            `json:"next"`
}

// waitPattern is wait's form: whole seconds or milliseconds, canonical
// decimal ("0s", "30s", "1500ms").
var waitPattern = regexp.MustCompile(`^(0|[1-9][0-9]{0,5})(s|ms)$`)

// parseEventQuery reads after (a next cursor; absent: the start), limit
// (1 to app.MaxEventLimit; absent: app.DefaultEventLimit) and wait (up to
// maxWait; absent: 0), refusing anything else with a problem naming the
// parameter.
func parseEventQuery(r *http.Request, maxWait time.Duration) (after domain.EventCursor, limit int, wait time.Duration, err error) {
	q := r.URL.Query()
	limit = app.DefaultEventLimit
	if v, ok := q["after"]; ok {
		if after, err = domain.ParseEventCursor(v[0]); err != nil {
			return after, 0, 0, newProblem(http.StatusBadRequest, CodeInvalidRequest,
				"after must be a next value this feed returned (the start is ev1.0.0)").withField("after")
		}
	}
	if v, ok := q["limit"]; ok {
		n, perr := strconv.Atoi(v[0])
		if perr != nil || n < 1 || n > app.MaxEventLimit || strconv.Itoa(n) != v[0] {
			return after, 0, 0, newProblem(http.StatusBadRequest, CodeInvalidRequest,
				fmt.Sprintf("limit must be a whole number from 1 to %d", app.MaxEventLimit)).withField("limit")
		}
		limit = n
	}
	if v, ok := q["wait"]; ok {
		m := waitPattern.FindStringSubmatch(v[0])
		var d time.Duration
		if m != nil {
			n, _ := strconv.Atoi(m[1])
			d = time.Duration(n) * map[string]time.Duration{"s": time.Second, "ms": time.Millisecond}[m[2]]
		}
		if m == nil || d > maxWait {
			return after, 0, 0, newProblem(http.StatusBadRequest, CodeInvalidRequest,
				fmt.Sprintf("wait must be a duration in whole s or ms (such as 30s, 1500ms) of at most %s", maxWait)).withField("wait")
		}
		wait = d
	}
	return after, limit, wait, nil
}

// listEvents answers a page of the events in the caller's scope after the
// cursor after, waiting up to wait for some when there are none yet.
func (a *api) listEvents(w http.ResponseWriter, r *http.Request) error {
	if a.events == nil {
		return newProblem(http.StatusServiceUnavailable, CodeUnavailable, "this server has no event feed")
	}
	after, limit, wait, err := parseEventQuery(r, a.events.maxWait)
	if err != nil {
		return err
	}
	scope := callerFrom(r.Context()).Scope
	events, next, err := a.events.feed.Events(r.Context(), domain.EventFilter{UserPrefix: scope.UserPrefix, Providers: scope.Providers}, after, limit, wait)
	if err != nil {
		return err
	}
	body := eventsBody{Events: make([]eventjson.Event, len(events)), Next: next.String()}
	for i, e := range events {
		body.Events[i] = eventjson.From(e)
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
