// Package oauth refreshes users' access tokens at each identity provider's
// token endpoint (RFC 6749 §6): it is tokenstore's ports.TokenRefresher. Its
// Revoker (ports.TokenRevoker) revokes them upstream once they are deleted:
// at RFC 7009 revocation endpoints (oauth2, gitlab, keycloak) and through
// GitHub's grant deletion API, with the same clients, timeouts, redirect
// refusal and scrubbed errors as a refresh.
//
// The replaced system lost users' grants in ways this package is shaped
// against:
//
//   - A hung provider call held a row lock and froze everything. Every
//     provider here has its own HTTP client with a hard timeout (15 s by
//     default), and the caller's context is honoured as well.
//   - Providers that rotate refresh tokens (GitHub Apps, GitLab, Keycloak,
//     Entra) invalidate the old one the moment they issue a new one. So a
//     response that carries tokens is never thrown away over a malformed
//     side field, and a refresh token is never sent twice on a guess: the
//     only retry is the generic provider's client-authentication probe,
//     and it runs only when the server refused the client, which it does
//     before it looks at the refresh token.
//   - Errors reach logs. They name the provider, the HTTP status and the
//     OAuth error code, and they wrap one of the domain sentinels so the
//     service can tell "reconnect" (ErrGrantRevoked) from "fix the
//     configuration" (ErrProviderRejected) from "try later"
//     (ErrProviderUnavailable). They never carry a token, the client secret
//     or the raw response body: the provider's error code and description
//     are sanitised, cut, and scrubbed of every secret in flight in every
//     encoding (see scrubber), because providers echo requests.
//   - Providers mislabel answers (JSON as text/plain or with no
//     Content-Type; GitHub's form encoding under any label). The body
//     decides how an answer is read, never the label, so a rotated refresh
//     token is never discarded over a label and invalid_grant is never
//     mistaken for a configuration problem.
//
// Why not golang.org/x/oauth2: its refresh path (Config.TokenSource) does
// well with GitHub's form-encoded answers and its HTTP 200 + "error" bodies,
// but it cannot do the rest of the job right:
//
//   - it never sends "scope" on a refresh, which Microsoft Entra (Azure
//     DevOps) requires;
//   - it copies the old refresh token into the new Token when the provider
//     sends none, so rotation can only be detected through Token.Extra;
//   - it fails the whole response when expires_in is a float or a
//     non-numeric string, discarding a refresh token the provider has
//     already rotated (the grant is then lost for good);
//   - its AuthStyleAutoDetect re-sends the refresh token after any failure
//     (a 500, a timeout, even invalid_grant), spending a single-use token
//     twice;
//   - its RetrieveError.Error() embeds the raw response body;
//   - it stamps expiries with time.Now, not an injectable clock.
//
// The exchange itself is one form POST and one small parser, so this
// package writes it with net/http instead.
package oauth
