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
	// AuditRefresh: one refresh attempt (a call to the provider's token
	// endpoint, by a read or by the worker) and its outcome: Status and
	// Code as RefreshOutcome gives them (200 refreshed; 409 with the code
	// that needs re-authorization; 503 with the code of a back-off or of an
	// attempt whose outcome could not be stored; 500
	// refresh_token_undecryptable).
	AuditRefresh AuditAction = "refresh"
	// AuditReauthRequired: tokens marked as needing re-authorization (the
	// user must reconnect), Status 409, Code why (CodeGrantRevoked,
	// CodeRefreshInterrupted).
	AuditReauthRequired AuditAction = "reauth_required"
	// AuditReadEvents: reading the event feed (recorded when refused or
	// failed; events hold no token material).
	AuditReadEvents AuditAction = "read_events"
	// AuditReencryptBatch: one batch of `tokenstore keys rotate`, Count the
	// rows it re-encrypted.
	AuditReencryptBatch AuditAction = "reencrypt_batch"
	// AuditImportBatch: one batch of an import, Count the rows it imported.
	AuditImportBatch AuditAction = "import_batch"
)

// AuditActions lists every action, for checking a filter.
func AuditActions() []AuditAction {
	return []AuditAction{AuditReadAccessToken, AuditReadOfflineToken, AuditPutTokens, AuditDeleteTokens,
		AuditPutOfflineToken, AuditDeleteOfflineToken, AuditListProviders, AuditAuthenticate,
		AuditRefresh, AuditReauthRequired, AuditReadEvents, AuditReencryptBatch, AuditImportBatch}
}

// AuditEvent is one audit record: who (Caller, on Instance) did what
// (Action) to whose token (User, Provider), and how it ended (Status, an
// HTTP status, and Code, the problem code or ""; Count, the rows a batch
// event covers, 0 for every other). It never holds token material. Time is
// set by the storage's clock when the event is stored; it is zero on events
// not yet stored.
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
	Count     int64
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
