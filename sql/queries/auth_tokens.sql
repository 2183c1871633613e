-- name: UpsertAuthTokens :one
-- A PUT: the tokens and their outbox event in one statement (one round
-- trip, no transaction of its own), so concurrent writers of the same
-- (user, provider) end with exactly one row holding one writer's complete
-- values. New tokens from the user start a clean refresh history, and a
-- refresh in flight loses its lease and cannot overwrite them (its fence
-- fails). The event is tokens.recovered when the row it replaces needed
-- re-authorization, else tokens.stored, each written only when
-- record_recovered / record_stored say (the event policy). The CTE prior
-- locks and reads the row before the upsert touches it: the upsert's
-- source row is made from prior's count (a data dependency, and always
-- true: prior has at most one row), so it cannot exist, let alone meet the
-- conflict, before prior has run. (A prior evaluated after the upsert would
-- meet the row this statement updated and skip it: the dependency must
-- stay, and must not be one the planner can drop.) Under READ
-- COMMITTED, FOR UPDATE reads the latest committed version, so the value
-- is the one replaced and no refresh can mark the row in between. No prior
-- row: tokens.stored (a concurrent first PUT that wins the insert race
-- stored fresh tokens too).
WITH prior AS (
    SELECT a.reauth_required FROM auth_tokens AS a
    WHERE a.user_id = @user_id::text AND a.provider = @provider::text
    FOR UPDATE
), up AS (
    INSERT INTO auth_tokens (
        user_id, provider, key_id, access_token, refresh_token,
        access_token_expires_at, refresh_token_expires_at, access_token_obtained_at
    )
    SELECT @user_id::text, @provider::text, @key_id::text, @access_token::bytea, sqlc.narg(refresh_token)::bytea,
        sqlc.narg(access_token_expires_at)::timestamptz, sqlc.narg(refresh_token_expires_at)::timestamptz,
        sqlc.narg(access_token_obtained_at)::timestamptz
    FROM (SELECT count(*) AS n FROM prior) AS p
    WHERE p.n < 2
    ON CONFLICT (user_id, provider) DO UPDATE SET
        key_id                   = EXCLUDED.key_id,
        access_token             = EXCLUDED.access_token,
        refresh_token            = EXCLUDED.refresh_token,
        access_token_expires_at  = EXCLUDED.access_token_expires_at,
        refresh_token_expires_at = EXCLUDED.refresh_token_expires_at,
        access_token_obtained_at = EXCLUDED.access_token_obtained_at,
        refresh_lease_owner      = NULL,
        refresh_lease_until      = NULL,
        reauth_required          = false,
        refresh_error            = NULL,
        next_refresh_at          = NULL,
        ambiguous_retries        = 0
    RETURNING version, created_at, updated_at
), event AS (
    INSERT INTO events (kind, user_id, provider, reason)
    SELECT CASE WHEN coalesce((SELECT reauth_required FROM prior), false) THEN @recovered_kind::text ELSE @stored_kind::text END,
        @user_id::text, @provider::text, ''
    FROM up
    WHERE CASE WHEN coalesce((SELECT reauth_required FROM prior), false) THEN @record_recovered::boolean ELSE @record_stored::boolean END
)
SELECT version, created_at, updated_at FROM up;

-- name: GetAuthTokens :one
SELECT * FROM auth_tokens
WHERE user_id = @user_id AND provider = @provider;

-- name: GetAuthTokensForUpdate :one
-- Also returns the database's clock, so every instance judges leases and
-- expiries by the same clock.
SELECT sqlc.embed(auth_tokens), clock_timestamp()::timestamptz AS db_now
FROM auth_tokens
WHERE user_id = @user_id AND provider = @provider
FOR UPDATE;

-- name: UpdateAuthTokens :one
-- Guarded by the version read under the lock: a row changed in between
-- (which the lock should make impossible) updates nothing and is reported.
UPDATE auth_tokens SET
    key_id                   = @key_id,
    access_token             = @access_token,
    refresh_token            = @refresh_token,
    access_token_expires_at  = @access_token_expires_at,
    refresh_token_expires_at = @refresh_token_expires_at,
    access_token_obtained_at = @access_token_obtained_at,
    refresh_lease_owner      = @refresh_lease_owner,
    refresh_lease_until      = @refresh_lease_until,
    reauth_required          = @reauth_required,
    refresh_error            = @refresh_error,
    next_refresh_at          = @next_refresh_at,
    ambiguous_retries        = @ambiguous_retries
WHERE user_id = @user_id AND provider = @provider AND version = @expected_version
RETURNING version, created_at, updated_at;

-- name: DeleteAuthTokens :execrows
-- The row is locked first (the CTE runs before the DELETE reaches the row),
-- so that the transaction id, which orders the events feed, is taken once
-- the row is ours: a plain DELETE takes it before it waits on the row lock
-- of a concurrent write, which may take a later id yet commit first, and the
-- feed would then list this delete before that write although the delete
-- took effect last. (A FOR UPDATE takes the id after the wait.)
WITH target AS (
    SELECT t.user_id, t.provider FROM auth_tokens AS t
    WHERE t.user_id = @user_id AND t.provider = @provider
    FOR UPDATE
)
DELETE FROM auth_tokens AS a USING target
WHERE a.user_id = target.user_id AND a.provider = target.provider;

-- name: ListAuthTokenProviders :many
SELECT provider, access_token_expires_at, refresh_token_expires_at, access_token_obtained_at,
       (refresh_token IS NOT NULL)::boolean AS has_refresh_token, updated_at,
       reauth_required, refresh_error, ambiguous_retries
FROM auth_tokens
WHERE user_id = @user_id
ORDER BY provider;

-- name: ClaimDueRefreshes :many
-- Leases up to max_rows rows for which domain.NextRefreshStep (domain/policy.go)
-- says StepRefresh, with each row's effective margin (domain.EffectiveMargin
-- of horizon, lifetime_fraction and the row's lifetime, domain/margin.go) as
-- the margin and only the given providers refreshable: this WHERE clause is
-- that function's StepRefresh branch written in SQL, and tests/storage checks
-- on a table of rows that the two agree. Keep them in step. The effective
-- margin: LEAST ignores the NULL of an unknown obtained_at or of a fraction
-- outside (0, 1), leaving horizon; GREATEST makes a negative one 0. now()
-- (not clock_timestamp()) so the first expiry bound (the effective margin is
-- never above horizon) can use the partial index. float8mul(a, b) is a * b:
-- sqlc v1.31 expands the first "*" of a query ending in RETURNING *. SKIP LOCKED lets several instances claim
-- disjoint batches at once. Rows under any lease are left alone: a live one
-- is someone's refresh, a lapsed one is MarkLapsedLeases's. For providers
-- that revoke the previous access token (revokes_previous_access_token), a
-- row whose last refresh had an unknown outcome (refresh_error is
-- domain.CodeProviderOutcomeUnknown, passed in as outcome_unknown) is due
-- whatever its expiry (outside the effective-margin bound); claiming it
-- counts an ambiguous retry.
WITH due AS (
    SELECT id FROM auth_tokens
    WHERE refresh_token IS NOT NULL
      AND NOT reauth_required
      AND provider = ANY(@providers::text[])
      AND ((access_token_expires_at <= now() + make_interval(secs => @horizon_seconds::float8)
            AND access_token_expires_at <= now() + make_interval(secs => GREATEST(0, LEAST(
                  @horizon_seconds::float8,
                  CASE WHEN @lifetime_fraction::float8 > 0 AND @lifetime_fraction::float8 < 1
                       THEN float8mul(@lifetime_fraction::float8,
                            EXTRACT(EPOCH FROM access_token_expires_at - access_token_obtained_at)::float8)
                  END))))
           OR (@revokes_previous_access_token::boolean AND refresh_error = @outcome_unknown::text))
      AND refresh_lease_owner IS NULL
      AND (next_refresh_at IS NULL OR next_refresh_at <= now())
      AND (refresh_token_expires_at IS NULL OR refresh_token_expires_at > now())
    ORDER BY access_token_expires_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
)
UPDATE auth_tokens SET
    refresh_lease_owner = @owner::text,
    refresh_lease_until = clock_timestamp() + make_interval(secs => @lease_seconds::float8),
    ambiguous_retries   = ambiguous_retries + (refresh_error IS NOT DISTINCT FROM @outcome_unknown::text)::int
WHERE id IN (SELECT id FROM due)
RETURNING *;

-- name: MarkLapsedLeases :many
-- A lease past its deadline (domain.RefreshState.LeaseLapsed: lease_until
-- <= now) means its refresh died after the provider may have rotated the
-- refresh token: the tokens need re-authorization. The read path marks such
-- rows when it meets them; the worker sweeps the rest so listings tell the
-- truth and the rows leave the refresh index. refresh_error is
-- domain.CodeRefreshInterrupted, passed in so the code has one spelling.
-- Returns the user and provider of every row it marked. With record_audit,
-- each marked row also leaves an audit event (the other audit_ values,
-- with the row's user and provider) in this same statement, from the
-- UPDATE's RETURNING: the rows are marked with their events or not at all
-- (a refused audit insert fails the statement). With record_event, each
-- also leaves its outbox event (event_kind, reason refresh_error) the same
-- way.
WITH marked AS (
    UPDATE auth_tokens SET
        refresh_lease_owner = NULL,
        refresh_lease_until = NULL,
        reauth_required     = true,
        refresh_error       = @refresh_error::text
    WHERE refresh_lease_owner IS NOT NULL AND refresh_lease_until <= now()
    RETURNING user_id, provider
), audited AS (
    INSERT INTO audit_events (instance, caller, action, user_id, provider, status, code, request_id)
    SELECT @audit_instance::text, @audit_caller::text, @audit_action::text, user_id, provider,
           @audit_status::integer, @audit_code::text, @audit_request_id::text
    FROM marked
    WHERE @record_audit::boolean
), evented AS (
    INSERT INTO events (kind, user_id, provider, reason)
    SELECT @event_kind::text, user_id, provider, @refresh_error::text
    FROM marked
    WHERE @record_event::boolean
)
SELECT user_id, provider FROM marked;

-- name: DeleteAuthTokensReturning :one
-- DeleteAuthTokens (the row locked first, for the same reason), returning
-- the deleted ciphertexts (upstream revocation takes them into the outbox).
WITH target AS (
    SELECT t.user_id, t.provider FROM auth_tokens AS t
    WHERE t.user_id = @user_id AND t.provider = @provider
    FOR UPDATE
)
DELETE FROM auth_tokens AS a USING target
WHERE a.user_id = target.user_id AND a.provider = target.provider
RETURNING a.key_id, a.access_token, a.refresh_token;

-- name: UpsertAuthTokensBatch :many
-- Many PUTs (adapters/postgres coalesce.go) in one statement: each row as
-- UpsertAuthTokens does it (the same columns, refresh history reset, event
-- kind and policy: keep the two in step), plus the audit events of the rows it wrote, so the rows,
-- their outbox events and their audit events commit together, by themselves
-- (one statement), or not at all. Element i of every row array is row i
-- (all equally long; refresh_tokens[i] NULL for none); a timestamp array's
-- element counts only where its boolean array (access_expires,
-- refresh_expires, obtained) is true, and the column is NULL otherwise
-- (sqlc makes the timestamp arrays []time.Time, which holds no NULL). No
-- two rows may share (user_id, provider) (ON CONFLICT would refuse the
-- statement). audit_rows[j] is the row (1-based) audit event j belongs to.
--
-- The events feed is ordered by transaction id, which is a row's order of
-- changes only if each writer took its id once it held the row (see
-- InsertEvents): a single-row write takes it with its one lock; this
-- statement takes it with its first lock, before it reaches the other rows,
-- which a newer transaction may change and commit in between. So it writes
-- only the rows no one changed after its snapshot (all their earlier
-- writers committed before the snapshot, hence took lower ids than its
-- own): prior locks the existing rows in (user_id, provider) order (batches
-- lock in one order, so they seldom deadlock each other; a deadlock fails
-- the statement, and the caller writes its rows alone) and compares the
-- version it locked (the touch trigger bumps it at every UPDATE) with the
-- snapshot's (seen). A row deleted since (seen but not locked), updated
-- since (another version) or inserted since (not seen, then a conflict: the
-- DO UPDATE's WHERE finds it outside prior, and leaves it) is not written
-- and not returned; the caller writes it alone (UpsertAuthTokens) once this
-- committed, with a later transaction id. Returns the rows written. The
-- upsert's source is made from prior's count (a data dependency, always
-- true) so that prior runs first, as in UpsertAuthTokens.
WITH input AS (
    SELECT r.user_id, r.provider, r.key_id, r.access_token, r.refresh_token,
           CASE WHEN r.access_expires THEN r.access_token_expires_at END AS access_token_expires_at,
           CASE WHEN r.refresh_expires THEN r.refresh_token_expires_at END AS refresh_token_expires_at,
           CASE WHEN r.obtained THEN r.access_token_obtained_at END AS access_token_obtained_at,
           r.ord
    FROM (
        SELECT unnest(@user_ids::text[]) AS user_id, unnest(@providers::text[]) AS provider,
               unnest(@key_ids::text[]) AS key_id, unnest(@access_tokens::bytea[]) AS access_token,
               unnest(@refresh_tokens::bytea[]) AS refresh_token,
               unnest(@access_expires::boolean[]) AS access_expires,
               unnest(@access_token_expires_at::timestamptz[]) AS access_token_expires_at,
               unnest(@refresh_expires::boolean[]) AS refresh_expires,
               unnest(@refresh_token_expires_at::timestamptz[]) AS refresh_token_expires_at,
               unnest(@obtained::boolean[]) AS obtained,
               unnest(@access_token_obtained_at::timestamptz[]) AS access_token_obtained_at,
               generate_series(1, cardinality(@user_ids::text[])) AS ord
    ) AS r
), seen AS (
    SELECT a.user_id, a.provider, a.version FROM auth_tokens AS a
    JOIN input AS i ON a.user_id = i.user_id AND a.provider = i.provider
), prior AS (
    SELECT a.user_id, a.provider, a.reauth_required, a.version FROM auth_tokens AS a
    JOIN input AS i ON a.user_id = i.user_id AND a.provider = i.provider
    ORDER BY a.user_id, a.provider
    FOR UPDATE OF a
), up AS (
    INSERT INTO auth_tokens (
        user_id, provider, key_id, access_token, refresh_token,
        access_token_expires_at, refresh_token_expires_at, access_token_obtained_at
    )
    SELECT i.user_id, i.provider, i.key_id, i.access_token, i.refresh_token,
        i.access_token_expires_at, i.refresh_token_expires_at, i.access_token_obtained_at
    FROM input AS i
    CROSS JOIN (SELECT count(*) AS n FROM prior) AS p
    LEFT JOIN seen AS s ON s.user_id = i.user_id AND s.provider = i.provider
    LEFT JOIN prior AS l ON l.user_id = i.user_id AND l.provider = i.provider
    WHERE p.n >= 0 AND s.version IS NOT DISTINCT FROM l.version
    ORDER BY i.user_id, i.provider
    ON CONFLICT (user_id, provider) DO UPDATE SET
        key_id                   = EXCLUDED.key_id,
        access_token             = EXCLUDED.access_token,
        refresh_token            = EXCLUDED.refresh_token,
        access_token_expires_at  = EXCLUDED.access_token_expires_at,
        refresh_token_expires_at = EXCLUDED.refresh_token_expires_at,
        access_token_obtained_at = EXCLUDED.access_token_obtained_at,
        refresh_lease_owner      = NULL,
        refresh_lease_until      = NULL,
        reauth_required          = false,
        refresh_error            = NULL,
        next_refresh_at          = NULL,
        ambiguous_retries        = 0
    WHERE EXISTS (SELECT 1 FROM prior AS l WHERE l.user_id = auth_tokens.user_id AND l.provider = auth_tokens.provider)
    RETURNING user_id, provider, version, created_at, updated_at
), event AS (
    INSERT INTO events (kind, user_id, provider, reason)
    SELECT CASE WHEN coalesce(l.reauth_required, false) THEN @recovered_kind::text ELSE @stored_kind::text END,
        u.user_id, u.provider, ''
    FROM up AS u LEFT JOIN prior AS l ON l.user_id = u.user_id AND l.provider = u.provider
    WHERE CASE WHEN coalesce(l.reauth_required, false) THEN @record_recovered::boolean ELSE @record_stored::boolean END
), audited AS (
    INSERT INTO audit_events (instance, caller, action, user_id, provider, status, code, request_id, count)
    SELECT e.instance, e.caller, e.action, e.user_id, e.provider, e.status, e.code, e.request_id, e.count
    FROM (
        SELECT unnest(@audit_rows::integer[]) AS row_ord,
               unnest(@audit_instances::text[]) AS instance, unnest(@audit_callers::text[]) AS caller,
               unnest(@audit_actions::text[]) AS action, unnest(@audit_user_ids::text[]) AS user_id,
               unnest(@audit_providers::text[]) AS provider, unnest(@audit_statuses::integer[]) AS status,
               unnest(@audit_codes::text[]) AS code, unnest(@audit_request_ids::text[]) AS request_id,
               unnest(@audit_counts::bigint[]) AS count
    ) AS e
    JOIN input AS i ON i.ord = e.row_ord
    JOIN up AS u ON u.user_id = i.user_id AND u.provider = i.provider
)
SELECT user_id, provider, version, created_at, updated_at FROM up;
