// Package fernet seals token material with Fernet (AES-128-CBC + HMAC-SHA256)
// so that tokenstore reads what the replaced Python system wrote, and so that
// a new key can become primary without downtime.
//
// Three choices follow from how such stores fail:
//
//   - The old system chose a key id at random per process, so instances could
//     not agree on which key sealed a row. Here a key's id is a one-way hash
//     of its material: every instance, and every future release, computes the
//     same id.
//   - Trying every key until one works reports a missing key as a corrupt
//     value and costs one HMAC per key. Here a ciphertext carries its key id
//     and is opened by exactly that key; only values imported without an id
//     fall back to trying the whole ring.
//   - Key material must not reach logs. A Key prints as its id in every fmt
//     verb, JSON and slog; errors never quote key or token text.
//
// A Keyring is immutable once built and safe for concurrent use.
package fernet
