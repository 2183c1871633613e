package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// KeyRotation re-encrypts stored values under the primary key, online: each
// batch is its own short transaction, rows are walked by key in id order
// (keyset pagination), and a row is rewritten only if it is unchanged since
// it was read and no refresh holds it, so nothing the service writes during
// a rotation is ever overwritten with older content. Re-running continues
// where a previous run stopped: rows already under the primary key are not
// visited again.
type KeyRotation struct {
	crypter ports.TokenCrypter
	repo    ports.KeyRepository
	log     *slog.Logger
}

// NewKeyRotation returns the use case.
func NewKeyRotation(crypter ports.TokenCrypter, repo ports.KeyRepository, log *slog.Logger) *KeyRotation {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KeyRotation{crypter: crypter, repo: repo, log: log}
}

// KeyStatus describes one key: in the keyring, in storage, or both.
type KeyStatus struct {
	ID        domain.KeyID
	Primary   bool
	InKeyring bool  // false: values sealed by a key the keyring lacks (unreadable)
	Values    int64 // stored values it seals
}

// Status lists the keyring's keys (primary first) and any other key id
// found in storage, with how many values each seals.
func (k *KeyRotation) Status(ctx context.Context) ([]KeyStatus, error) {
	usage, err := k.repo.CountValuesByKey(ctx)
	if err != nil {
		return nil, err
	}
	counts := map[domain.KeyID]int64{}
	for _, u := range usage {
		counts[u.KeyID] = u.Values
	}
	var out []KeyStatus
	for i, id := range k.crypter.Keys() {
		out = append(out, KeyStatus{ID: id, Primary: i == 0, InKeyring: true, Values: counts[id]})
		delete(counts, id)
	}
	var unknown []domain.KeyID
	for id := range counts {
		unknown = append(unknown, id)
	}
	slices.Sort(unknown)
	for _, id := range unknown {
		out = append(out, KeyStatus{ID: id, Values: counts[id]})
	}
	return out, nil
}

// RotateOptions tune a rotation. The zero value uses the defaults.
type RotateOptions struct {
	// BatchSize rows per transaction. Default 500.
	BatchSize int
	// Passes: rows skipped because they changed or a refresh held them are
	// retried in up to this many further passes. Default 5.
	Passes int
	// Progress, if set, is called after each batch with values done so far
	// and the total to do.
	Progress func(done, total int64)
}

// RowFailure names a row that could not be re-encrypted, and why.
type RowFailure struct {
	Table    string
	User     domain.UserID
	Provider domain.Provider // empty for offline tokens
	Reason   string
}

func (f RowFailure) String() string {
	if f.Table == "*" {
		return f.Reason
	}
	if f.Provider == "" {
		return fmt.Sprintf("%s user %q: %s", f.Table, f.User, f.Reason)
	}
	return fmt.Sprintf("%s user %q provider %s: %s", f.Table, f.User, f.Provider, f.Reason)
}

// RotationReport is the outcome of a rotation.
type RotationReport struct {
	Primary domain.KeyID
	// Rotated is how many values were re-encrypted under the primary key.
	Rotated int64
	// Failed lists rows that could not be re-encrypted (undecryptable,
	// misplaced, or sealed by a key missing from the keyring), and rows
	// still busy after every pass.
	Failed []RowFailure
	// After lists every key's remaining values once the rotation ended.
	After []KeyStatus
	// Elapsed is the rotation's wall time.
	Elapsed time.Duration
}

// Rotate re-encrypts every value not sealed by the primary key.
func (k *KeyRotation) Rotate(ctx context.Context, opts RotateOptions) (RotationReport, error) {
	start := time.Now()
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Passes <= 0 {
		opts.Passes = 5
	}
	primary := k.crypter.PrimaryKeyID()
	report := RotationReport{Primary: primary}
	status, err := k.Status(ctx)
	if err != nil {
		return report, err
	}
	var total int64
	for _, s := range status {
		if s.ID != primary {
			total += s.Values
		}
	}
	failed := map[string]RowFailure{} // by row identity: never retried
	var done int64
	progress := func(n int64) {
		done += n
		if opts.Progress != nil {
			opts.Progress(min(done, total), total)
		}
	}
	progress(0)

	for pass := 0; pass <= opts.Passes; pass++ {
		skipped := 0
		for _, s := range status {
			if s.ID == primary {
				continue
			}
			if !s.InKeyring {
				failed["key:"+string(s.ID)] = RowFailure{Table: "*", User: "*",
					Reason: fmt.Sprintf("%d values are sealed by key %s, which is not in the keyring: add it as an older key", s.Values, s.ID)}
				continue
			}
			n, sk, err := k.rotateAuth(ctx, s.ID, opts.BatchSize, failed, progress)
			report.Rotated += n
			skipped += sk
			if err != nil {
				return k.finish(ctx, report, failed, start, err)
			}
			n, sk, err = k.rotateOffline(ctx, s.ID, opts.BatchSize, failed, progress)
			report.Rotated += n
			skipped += sk
			if err != nil {
				return k.finish(ctx, report, failed, start, err)
			}
		}
		if skipped == 0 {
			break
		}
		k.log.Info("rows changed or were being refreshed during the pass; retrying them", "rows", skipped, "pass", pass+1)
		select {
		case <-ctx.Done():
			return k.finish(ctx, report, failed, start, ctx.Err())
		case <-time.After(time.Duration(pass+1) * 200 * time.Millisecond):
		}
		if pass == opts.Passes {
			failed["busy"] = RowFailure{Table: "*", User: "*",
				Reason: fmt.Sprintf("%d rows kept changing or stayed under a refresh lease; run the rotation again", skipped)}
		}
	}
	return k.finish(ctx, report, failed, start, nil)
}

func (k *KeyRotation) finish(ctx context.Context, report RotationReport, failed map[string]RowFailure, start time.Time, err error) (RotationReport, error) {
	for _, f := range failed {
		report.Failed = append(report.Failed, f)
	}
	slices.SortFunc(report.Failed, func(a, b RowFailure) int {
		if c := cmpString(a.Table, b.Table); c != 0 {
			return c
		}
		if c := cmpString(string(a.User), string(b.User)); c != 0 {
			return c
		}
		return cmpString(string(a.Provider), string(b.Provider))
	})
	report.Elapsed = time.Since(start)
	if after, serr := k.Status(context.WithoutCancel(ctx)); serr == nil {
		report.After = after
	}
	return report, err
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rotateAuth walks key's auth token rows in id order. It returns values
// rotated and rows skipped (changed or leased since read).
func (k *KeyRotation) rotateAuth(ctx context.Context, key domain.KeyID, batch int, failed map[string]RowFailure, progress func(int64)) (int64, int, error) {
	var rotated int64
	skipped := 0
	var after int64
	for {
		rows, err := k.repo.AuthTokensByKey(ctx, key, after, batch)
		if err != nil || len(rows) == 0 {
			return rotated, skipped, err
		}
		after = rows[len(rows)-1].ID
		var resealed []domain.SealedAuthTokens
		for _, row := range rows {
			id := "auth:" + string(row.User) + "\x00" + string(row.Provider)
			if _, bad := failed[id]; bad {
				continue
			}
			next, err := k.resealAuth(row)
			if err != nil {
				failed[id] = RowFailure{Table: "auth_tokens", User: row.User, Provider: row.Provider, Reason: err.Error()}
				k.log.Error("cannot re-encrypt auth tokens", "user", row.User, "provider", row.Provider, "err", err)
				continue
			}
			resealed = append(resealed, next)
		}
		ok, _, err := k.repo.Rekey(ctx, resealed, nil)
		if err != nil {
			return rotated, skipped, err
		}
		var n int64
		for i, done := range ok {
			if !done {
				skipped++
				continue
			}
			n++
			if resealed[i].RefreshToken != nil {
				n++
			}
		}
		rotated += n
		progress(n)
	}
}

func (k *KeyRotation) rotateOffline(ctx context.Context, key domain.KeyID, batch int, failed map[string]RowFailure, progress func(int64)) (int64, int, error) {
	var rotated int64
	skipped := 0
	var after domain.UserID
	for {
		rows, err := k.repo.OfflineTokensByKey(ctx, key, after, batch)
		if err != nil || len(rows) == 0 {
			return rotated, skipped, err
		}
		after = rows[len(rows)-1].User
		var resealed []domain.SealedOfflineToken
		for _, row := range rows {
			id := "offline:" + string(row.User)
			if _, bad := failed[id]; bad {
				continue
			}
			place := OfflineTokenPlace(row.User)
			secret, err := Unseal(k.crypter, place, domain.Ciphertext{KeyID: row.KeyID, Data: row.Token})
			if err == nil {
				var c domain.Ciphertext
				if c, err = Seal(k.crypter, place, secret); err == nil {
					row.KeyID, row.Token = c.KeyID, c.Data
					resealed = append(resealed, row)
					continue
				}
			}
			failed[id] = RowFailure{Table: "offline_tokens", User: row.User, Reason: err.Error()}
			k.log.Error("cannot re-encrypt offline token", "user", row.User, "err", err)
		}
		_, ok, err := k.repo.Rekey(ctx, nil, resealed)
		if err != nil {
			return rotated, skipped, err
		}
		var n int64
		for _, done := range ok {
			if done {
				n++
			} else {
				skipped++
			}
		}
		rotated += n
		progress(n)
	}
}

// resealAuth re-encrypts a row's tokens under the primary key, each bound
// to its place as before.
func (k *KeyRotation) resealAuth(row domain.SealedAuthTokens) (domain.SealedAuthTokens, error) {
	access, err := Unseal(k.crypter, AccessTokenPlace(row.User, row.Provider), domain.Ciphertext{KeyID: row.KeyID, Data: row.AccessToken})
	if err != nil {
		return row, err
	}
	c, err := Seal(k.crypter, AccessTokenPlace(row.User, row.Provider), access)
	if err != nil {
		return row, err
	}
	next := row
	next.KeyID, next.AccessToken = c.KeyID, c.Data
	if row.RefreshToken != nil {
		refresh, err := Unseal(k.crypter, RefreshTokenPlace(row.User, row.Provider), domain.Ciphertext{KeyID: row.KeyID, Data: row.RefreshToken})
		if err != nil {
			return row, err
		}
		rc, err := Seal(k.crypter, RefreshTokenPlace(row.User, row.Provider), refresh)
		if err != nil {
			return row, err
		}
		if rc.KeyID != c.KeyID {
			return row, fmt.Errorf("primary key changed during re-encryption")
		}
		next.RefreshToken = rc.Data
	}
	return next, nil
}

// CheckRetire reports why key cannot be retired (removed from the keyring)
// yet, or nil when no stored value needs it.
func (k *KeyRotation) CheckRetire(ctx context.Context, key domain.KeyID) error {
	if key == k.crypter.PrimaryKeyID() {
		return fmt.Errorf("key %s is the primary key: make another key primary (put it first) and rotate before retiring this one", key)
	}
	status, err := k.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range status {
		if s.ID == key && s.Values > 0 {
			return fmt.Errorf("%d stored values are still sealed by key %s: run `tokenstore keys rotate` first", s.Values, key)
		}
	}
	return nil
}
