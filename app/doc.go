// Package app holds tokenstore's use cases. TokenService is what the HTTP API,
// the CLI and Go callers use: it validates input, seals token material
// through ports.TokenCrypter before anything reaches ports.TokenRepository,
// and applies the domain's expiry rules on the way out. It depends only on
// domain and ports.
package app
