package fernet

import (
	"bytes"
	"encoding/base64"
)

// fernetPrefix starts every Fernet token written before the year 4000: the
// version byte 0x80 and the high, still-zero bytes of the timestamp.
const fernetPrefix = "gAAAAA"

// wrappedPrefix is fernetPrefix once more through standard base64.
var wrappedPrefix = base64.StdEncoding.EncodeToString([]byte(fernetPrefix))

// UnwrapLegacy undoes the extra base64 layer the replaced system's
// encrypt_utils put around some Fernet tokens (b64encode(fernet.encrypt(..)))
// and returns every other input unchanged, so an import can pass each stored
// value through it without knowing which code path wrote it. It decrypts
// nothing; what it returns still has to be opened with Decrypt.
func UnwrapLegacy(data []byte) []byte {
	if !looksWrapped(data) {
		return data
	}
	inner := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(inner, bytes.TrimSpace(data))
	if err != nil || !bytes.HasPrefix(inner[:n], []byte(fernetPrefix)) {
		return data
	}
	return inner[:n]
}

func looksWrapped(data []byte) bool {
	return bytes.HasPrefix(data, []byte(wrappedPrefix))
}
