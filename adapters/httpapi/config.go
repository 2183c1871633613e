package httpapi

import "errors"

// Validate checks what the server needs before it can listen. The timeouts
// are not checked: zero means no limit, as in net/http.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("TOKENSTORE_HTTP_ADDR is empty: give host:port")
	}
	return nil
}
