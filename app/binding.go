package app

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// Fernet has no associated data: a ciphertext copied into another row, or
// from the refresh token column into the access token column, would decrypt
// as if it belonged there. So every value is sealed in an envelope naming
// its place (table, field, user, provider), and opening checks the place.
// A moved ciphertext then fails as an integrity error instead of handing
// one user's token to another.

// The tables tokenstore stores sealed values in, as places, import
// summaries and re-encryption failures name them. Events keep deleted
// auth tokens for upstream revocation still bound to their auth_tokens
// places: eventsTable names them in re-encryption failures only.
const (
	authTokensTable    = "auth_tokens"
	offlineTokensTable = "offline_tokens"
	eventsTable        = "events"
)

// Place is where a sealed value belongs.
type Place struct {
	Table    string
	Field    string
	User     domain.UserID
	Provider domain.Provider // empty for offline tokens
}

// AccessTokenPlace, RefreshTokenPlace and OfflineTokenPlace are the places
// of the values tokenstore stores.
func AccessTokenPlace(u domain.UserID, p domain.Provider) Place {
	return Place{Table: authTokensTable, Field: accessTokenField, User: u, Provider: p}
}

// RefreshTokenPlace: see AccessTokenPlace.
func RefreshTokenPlace(u domain.UserID, p domain.Provider) Place {
	return Place{Table: authTokensTable, Field: refreshTokenField, User: u, Provider: p}
}

// OfflineTokenPlace: see AccessTokenPlace.
func OfflineTokenPlace(u domain.UserID) Place {
	return Place{Table: offlineTokensTable, Field: offlineTokenField, User: u}
}

func (p Place) String() string {
	if p.Provider == "" {
		return fmt.Sprintf("%s.%s of user %q", p.Table, p.Field, p.User)
	}
	return fmt.Sprintf("%s.%s of user %q, provider %s", p.Table, p.Field, p.User, p.Provider)
}

// ErrMisplaced is wrapped (with domain.ErrDecrypt) when a ciphertext is
// valid but belongs to another place.
var ErrMisplaced = errors.New("ciphertext belongs to another row or field")

// Seal encrypts secret with c's primary key, bound to place, in the binary
// envelope (envelope.go). It fails for a place the envelope cannot name
// (a user id, provider name or secret outside its bounds); errors never
// quote the secret.
func Seal(c ports.TokenCrypter, place Place, secret domain.Secret) (domain.Ciphertext, error) {
	return seal(c, EnvelopeBinary, place, secret)
}

// seal is Seal in the envelope format f.
func seal(c ports.TokenCrypter, f EnvelopeFormat, place Place, secret domain.Secret) (domain.Ciphertext, error) {
	msg, err := f.envelope(place, secret.Reveal())
	if err != nil {
		return domain.Ciphertext{}, fmt.Errorf("%s: %w", place, err)
	}
	defer clear(msg)
	return c.Seal(msg)
}

// Unseal decrypts ct and checks it was sealed for place, whichever envelope
// holds it (binary, or JSON from before). A ciphertext moved from another
// place fails with domain.ErrDecrypt and ErrMisplaced; one that opens to no
// valid envelope with domain.ErrDecrypt. Errors name the place, never the
// material.
func Unseal(c ports.TokenCrypter, place Place, ct domain.Ciphertext) (domain.Secret, error) {
	secret, _, err := unseal(c, place, ct)
	return secret, err
}

// unseal is Unseal, also saying which envelope format ct was in.
func unseal(c ports.TokenCrypter, place Place, ct domain.Ciphertext) (domain.Secret, EnvelopeFormat, error) {
	msg, err := c.Open(ct)
	if err != nil {
		return domain.Secret{}, "", fmt.Errorf("%s: %w", place, err)
	}
	defer clear(msg)
	secret, format, err := openEnvelope(msg, place)
	if err != nil {
		return domain.Secret{}, format, fmt.Errorf("%s: %w: %w", place, domain.ErrDecrypt, err)
	}
	return secret, format, nil
}

// sealAuthTokens seals a row's tokens under the primary key, each bound to
// its place in an envelope of format f, for storage. Both carry the row's
// one key id: should the
// keyring's primary change between the two (a SIGHUP reload), it seals
// both again under the new primary, and fails rather than store a row
// that names the wrong key if the primary keeps changing.
func sealAuthTokens(c ports.TokenCrypter, f EnvelopeFormat, t domain.AuthTokens) (domain.SealedAuthTokens, error) {
	const attempts = 3
	for i := 1; ; i++ {
		sealed, err := sealAuthTokensOnce(c, f, t)
		if !errors.Is(err, errPrimaryChanged) || i == attempts {
			return sealed, err
		}
	}
}

// errPrimaryChanged: the keyring's primary changed while a row was sealed.
var errPrimaryChanged = errors.New("the keyring's primary key changed while sealing")

func sealAuthTokensOnce(c ports.TokenCrypter, f EnvelopeFormat, t domain.AuthTokens) (domain.SealedAuthTokens, error) {
	access, err := seal(c, f, AccessTokenPlace(t.User, t.Provider), t.AccessToken)
	if err != nil {
		return domain.SealedAuthTokens{}, fmt.Errorf("seal access token: %w", err)
	}
	sealed := domain.SealedAuthTokens{
		User: t.User, Provider: t.Provider, KeyID: access.KeyID,
		AccessToken: access.Data, AccessExpiry: t.AccessExpiry, RefreshExpiry: t.RefreshExpiry,
	}
	if t.HasRefreshToken() {
		refresh, err := seal(c, f, RefreshTokenPlace(t.User, t.Provider), t.RefreshToken)
		if err != nil {
			return domain.SealedAuthTokens{}, fmt.Errorf("seal refresh token: %w", err)
		}
		if refresh.KeyID != access.KeyID {
			return domain.SealedAuthTokens{}, fmt.Errorf("seal tokens: %w (from %s to %s)", errPrimaryChanged, access.KeyID, refresh.KeyID)
		}
		sealed.RefreshToken = refresh.Data
	}
	return sealed, nil
}

// unsealAuthTokens opens a stored row's tokens, checking each was sealed
// for its place. It also counts the row's values sealed in an envelope
// format other than f (re-encryption rewrites them).
func unsealAuthTokens(c ports.TokenCrypter, f EnvelopeFormat, row domain.SealedAuthTokens) (_ domain.AuthTokens, otherFormat int64, _ error) {
	access, format, err := unseal(c, AccessTokenPlace(row.User, row.Provider), domain.Ciphertext{KeyID: row.KeyID, Data: row.AccessToken})
	if err != nil {
		return domain.AuthTokens{}, 0, err
	}
	otherFormat += notIn(f, format)
	var refresh domain.Secret
	if row.RefreshToken != nil {
		refresh, format, err = unseal(c, RefreshTokenPlace(row.User, row.Provider), domain.Ciphertext{KeyID: row.KeyID, Data: row.RefreshToken})
		if err != nil {
			return domain.AuthTokens{}, 0, err
		}
		otherFormat += notIn(f, format)
	}
	return domain.AuthTokens{
		User: row.User, Provider: row.Provider, AccessToken: access, RefreshToken: refresh,
		AccessExpiry: row.AccessExpiry, RefreshExpiry: row.RefreshExpiry,
	}, otherFormat, nil
}

// notIn is 1 when a value found in format found is not in format f, else 0.
func notIn(f, found EnvelopeFormat) int64 {
	if found != f.OrDefault() {
		return 1
	}
	return 0
}

// sealOfflineToken seals a user's offline token under the primary key,
// bound to its place in an envelope of format f, for storage.
func sealOfflineToken(c ports.TokenCrypter, f EnvelopeFormat, t domain.OfflineToken) (domain.SealedOfflineToken, error) {
	sealed, err := seal(c, f, OfflineTokenPlace(t.User), t.Token)
	if err != nil {
		return domain.SealedOfflineToken{}, fmt.Errorf("seal offline token: %w", err)
	}
	return domain.SealedOfflineToken{User: t.User, KeyID: sealed.KeyID, Token: sealed.Data}, nil
}

// sealer seals rows for storage and opens them for callers. The service
// and the refresh coordinator share one, so every row a use case writes is
// sealed by the one routine (sealAuthTokens) in the one envelope format,
// and every read logs a moved ciphertext the same way.
type sealer struct {
	crypter ports.TokenCrypter
	format  EnvelopeFormat // of new values ("" is EnvelopeBinary)
	log     *slog.Logger
}

// seal seals a row's tokens for storage (see sealAuthTokens).
func (s sealer) seal(t domain.AuthTokens) (domain.SealedAuthTokens, error) {
	return sealAuthTokens(s.crypter, s.format, t)
}

// sealOffline seals an offline token for storage (see sealOfflineToken).
func (s sealer) sealOffline(t domain.OfflineToken) (domain.SealedOfflineToken, error) {
	return sealOfflineToken(s.crypter, s.format, t)
}

// openAt is Unseal, logging a misplaced ciphertext with the row's identity
// (never its material): it means someone moved values in the database.
func (s sealer) openAt(place Place, ct domain.Ciphertext) (domain.Secret, error) {
	secret, err := Unseal(s.crypter, place, ct)
	if errors.Is(err, ErrMisplaced) {
		s.log.Error("integrity: a stored ciphertext belongs to another place (moved or copied in the database)",
			"table", place.Table, "field", place.Field, "user", place.User, "provider", place.Provider)
	}
	return secret, err
}

// open decrypts a row's access token for a caller.
func (s sealer) open(t domain.ServableAuthTokens) (AccessToken, error) {
	token, err := s.openAt(AccessTokenPlace(t.User, t.Provider), domain.Ciphertext{KeyID: t.KeyID, Data: t.AccessToken})
	if err != nil {
		return AccessToken{}, err
	}
	return AccessToken{User: t.User, Provider: t.Provider, Token: token, Expiry: t.AccessExpiry}, nil
}
