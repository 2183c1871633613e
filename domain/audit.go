package domain

import "time"

// AuditAction names what an audit event records.
type AuditAction string

// The actions tokenstore records.
const (
	AuditReadAccessToken    AuditAction = "read_access_token"
	AuditReadOfflineToken   AuditAction = "read_offline_token"
	AuditPutTokens          AuditAction = "put_tokens"
	AuditDeleteTokens       AuditAction = "delete_tokens"
	AuditPutOfflineToken    AuditAction = "put_offline_token"
	AuditDeleteOfflineToken AuditAction = "delete_offline_token"
	// AuditListProviders: listing a user's providers (recorded when refused).
	AuditListProviders AuditAction = "list_providers"
	// AuditAuthenticate: a request under /v1 whose credential (or client
	// certificate) was refused, before its route is known.
	AuditAuthenticate AuditAction = "authenticate"
)

// AuditActions lists every action, for checking a filter.
func AuditActions() []AuditAction {
	return []AuditAction{AuditReadAccessToken, AuditReadOfflineToken, AuditPutTokens, AuditDeleteTokens,
		AuditPutOfflineToken, AuditDeleteOfflineToken, AuditListProviders, AuditAuthenticate}
}

// AuditEvent is one audit record: who (Caller, on Instance) did what
// (Action) to whose token (User, Provider), and how it ended (Status, an
// HTTP status, and Code, the problem code or ""). It never holds token
// material. Time is set by the storage's clock when the event is stored;
// it is zero on events not yet stored.
type AuditEvent struct {
	Time      time.Time
	Instance  string
	Caller    string
	Action    AuditAction
	User      UserID
	Provider  Provider
	Status    int
	Code      string
	RequestID string
}

// AuditFilter selects audit events. A nil field matches everything; Since
// is inclusive, Until exclusive.
type AuditFilter struct {
	User     *UserID
	Provider *Provider
	Caller   *string
	Action   *AuditAction
	Since    *time.Time
	Until    *time.Time
}
