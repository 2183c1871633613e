package httpapi

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CertIdentity is the identity a caller's client certificate must carry:
// a URI SAN (such as a SPIFFE ID) or a DNS SAN. The zero value requires no
// certificate.
type CertIdentity struct {
	uri string // canonical form, as url.URL.String writes it
	dns string // lower case
}

// ParseCertIdentity reads a client_cert_identity setting: a URI with a
// scheme and an authority (spiffe://example.org/billing) names a URI SAN;
// anything else must be a DNS name (billing.internal.example.org), matched
// exactly (case aside) against the DNS SANs. A wildcard is refused: it
// would name many services, not one.
func ParseCertIdentity(s string) (CertIdentity, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return CertIdentity{}, fmt.Errorf("%q is not a URI SAN such as spiffe://trust-domain/workload (a scheme and a host, no user, query or fragment)", s)
		}
		return CertIdentity{uri: u.String()}, nil
	}
	if !validDNSName(s) {
		return CertIdentity{}, fmt.Errorf("%q is neither a URI SAN (spiffe://trust-domain/workload) nor a DNS name (billing.internal.example.org)", s)
	}
	return CertIdentity{dns: strings.ToLower(s)}, nil
}

// validDNSName accepts dot-separated labels of letters, digits and inner
// hyphens, at most 253 characters.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// IsZero reports whether no certificate is required.
func (id CertIdentity) IsZero() bool { return id == CertIdentity{} }

// String is the identity as configured (canonical form).
func (id CertIdentity) String() string { return id.uri + id.dns }

// heldBy reports whether cert carries the identity among its SANs.
func (id CertIdentity) heldBy(cert *x509.Certificate) bool {
	for _, u := range cert.URIs {
		if id.uri != "" && u.String() == id.uri {
			return true
		}
	}
	for _, d := range cert.DNSNames {
		if id.dns != "" && strings.EqualFold(d, id.dns) {
			return true
		}
	}
	return false
}

// checkClientCert admits a caller that requires no certificate, or one
// whose request came over a connection whose client certificate chains to
// http.client_ca_file (the handshake verified it) and carries the caller's
// identity. The refusal says a certificate is required or does not match,
// never which identity is expected: a peer holding a stolen credential
// learns nothing about the certificate it would also need.
func (c *Caller) checkClientCert(cs *tls.ConnectionState) error {
	if c.ClientCertIdentity.IsZero() {
		return nil
	}
	if cs == nil || len(cs.VerifiedChains) == 0 {
		return newProblem(http.StatusUnauthorized, CodeUnauthenticated,
			"this credential's caller must also present its client certificate (mutual TLS); none was presented").
			withHeader("WWW-Authenticate", `Bearer realm="tokenstore"`)
	}
	if !c.ClientCertIdentity.heldBy(cs.VerifiedChains[0][0]) {
		return newProblem(http.StatusUnauthorized, CodeUnauthenticated,
			"the client certificate presented does not carry the identity configured for this credential's caller").
			withHeader("WWW-Authenticate", `Bearer realm="tokenstore"`)
	}
	return nil
}
