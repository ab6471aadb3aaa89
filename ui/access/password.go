package access

import (
	"errors"
	"strings"
	"unicode"
)

// CheckPasswordStrength refuses passwords an attacker guesses quickly:
// fewer than 12 characters, fewer than three character classes, or one
// that contains the user name.
func CheckPasswordStrength(user, pw string) error {
	if len([]rune(pw)) < 12 {
		return errors.New("the password needs at least 12 characters")
	}
	if len(pw) > 256 {
		return errors.New("the password is longer than 256 bytes")
	}
	var classes [4]bool
	for _, r := range pw {
		switch {
		case unicode.IsLower(r):
			classes[0] = true
		case unicode.IsUpper(r):
			classes[1] = true
		case unicode.IsDigit(r):
			classes[2] = true
		default:
			classes[3] = true
		}
	}
	n := 0
	for _, c := range classes {
		if c {
			n++
		}
	}
	if n < 3 {
		return errors.New("the password needs three of: lower-case letters, upper-case letters, digits, other characters")
	}
	if u := strings.ToLower(strings.TrimSpace(user)); len(u) >= 3 && strings.Contains(strings.ToLower(pw), u) {
		return errors.New("the password must not contain the user name")
	}
	for _, weak := range []string{"password", "passw0rd", "123456", "qwerty", "coffer", "letmein", "welcome"} {
		if strings.Contains(strings.ToLower(pw), weak) {
			return errors.New("the password contains a commonly guessed word (" + weak + ")")
		}
	}
	return nil
}
