// Package domain holds tokenstore's pure types and rules: who a token belongs
// to, what a provider name may look like, when a token needs refreshing, and
// the errors every layer agrees on. It imports only the standard library, so
// each rule here can be tested with nothing but a clock value.
package domain
