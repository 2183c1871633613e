// Package openhands reads the token tables of an OpenHands enterprise
// database, the system tokenstore replaces, so `tokenstore import openhands`
// can copy them. It is an inbound adapter for the import use case: it yields
// each row decrypted (ports.ImportedAuthTokens, ports.ImportedOfflineToken)
// or with the reason it could not be, and never writes to the source.
//
// What it reproduces (OpenHands enterprise/server/auth/token_manager.py and
// enterprise/storage/encrypt_utils.py):
//
//   - The Fernet key is base64(SHA-256(jwt_secret)); fernet.KeyFromJWTSecret
//     derives the same key material.
//   - auth_tokens.access_token and refresh_token hold Fernet tokens of the
//     UTF-8 plaintext (TokenManager.encrypt_text). Values written through
//     encrypt_utils carry one more layer of standard base64; both forms are
//     accepted, value by value.
//   - access_token_expires_at and refresh_token_expires_at are epoch seconds,
//     0 meaning the token never expires.
//   - offline_tokens.offline_token is the JSON {"tokens": F}, where F is a
//     Fernet token of the JSON {"refresh_token": <offline token>}
//     (TokenManager.store_offline_token).
//
// A refresh token that is empty (an empty column, or a Fernet token of the
// empty string) means the row has no refresh token; its expiry is then
// dropped, since tokenstore keeps a refresh expiry only with a refresh token.
package openhands
