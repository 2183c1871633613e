-- name: CountRefreshBacklog :many
-- The worker's backlog, per provider of providers (which share the margin
-- margin_seconds): refreshable tokens (a refresh token that has not
-- expired, not reauth_required) whose access token expires within its
-- effective margin (domain.EffectiveMargin of the margin and
-- lifetime_fraction; the same expression as ClaimDueRefreshes' without the
-- worker's lookahead), so due by domain.NextRefreshStep and not yet
-- refreshed. Rows under a lease or in a back-off count: they are due and
-- not refreshed. The first expiry bound lets the partial index
-- auth_tokens_refresh_due_idx read only the due rows. float8mul(a, b) is
-- a * b (see ClaimDueRefreshes).
SELECT provider::text AS provider, count(*)::bigint AS due
FROM auth_tokens
WHERE refresh_token IS NOT NULL
  AND NOT reauth_required
  AND provider = ANY(@providers::text[])
  AND access_token_expires_at <= now() + make_interval(secs => @margin_seconds::float8)
  AND access_token_expires_at <= now() + make_interval(secs => GREATEST(0, LEAST(
        @margin_seconds::float8,
        CASE WHEN @lifetime_fraction::float8 > 0 AND @lifetime_fraction::float8 < 1
             THEN float8mul(@lifetime_fraction::float8,
                  EXTRACT(EPOCH FROM access_token_expires_at - access_token_obtained_at)::float8)
        END)))
  AND (refresh_token_expires_at IS NULL OR refresh_token_expires_at > now())
GROUP BY provider
ORDER BY provider;

-- name: CountReauthRequired :many
-- Tokens whose user must reconnect, per provider. No index serves it (the
-- refresh index leaves these rows out): a scan of auth_tokens, which the
-- metrics run at most once per their cache interval.
SELECT provider::text AS provider, count(*)::bigint AS reauth_required
FROM auth_tokens
WHERE reauth_required
GROUP BY provider
ORDER BY provider;

-- name: CountDeliveries :many
-- Deliveries not delivered, per target and state (pending, failed), with
-- the age in seconds of the oldest one's event by the database's clock:
-- the partial indexes on pending and failed deliveries keep it to those.
SELECT d.target, d.state, count(*)::bigint AS deliveries,
    coalesce(extract(epoch FROM now() - min(e.occurred_at)), 0)::float8 AS oldest_seconds
FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
WHERE d.state IN ('pending', 'failed')
GROUP BY d.target, d.state
ORDER BY d.target, d.state;
