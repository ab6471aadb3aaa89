package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// signaturePrefix starts every X-Coffer-Signature value.
const signaturePrefix = "sha256="

// Signature is the X-Coffer-Signature value for a webhook body sent with
// the X-Coffer-Timestamp value timestamp: "sha256=" and the lowercase hex
// HMAC-SHA256, keyed with secret, of timestamp + "." + body.
func Signature(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return signaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature tells, in constant time, whether header (the
// X-Coffer-Signature value) signs body with secret and timestamp (the
// X-Coffer-Timestamp value). It does not judge the timestamp's age: a
// receiver should also refuse one that is too far from its clock.
func VerifySignature(secret, timestamp, body, header string) bool {
	if secret == "" || len(header) != len(signaturePrefix)+2*sha256.Size {
		return false
	}
	want := Signature(secret, timestamp, []byte(body))
	return hmac.Equal([]byte(want), []byte(header))
}
