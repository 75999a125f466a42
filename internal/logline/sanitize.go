package logline

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sanitize makes untrusted text safe to show: invalid UTF-8 becomes U+FFFD,
// control characters (including newlines and escape sequences) become a
// space, runs of white space collapse, and the result is cut to at most max
// bytes at a rune boundary, ending in "…" when cut.
func Sanitize(s string, max int) string {
	var b strings.Builder
	b.Grow(min(len(s), max))
	space := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			if b.Len()+1 > max {
				break
			}
			b.WriteByte(' ')
			space = false
		}
		n := utf8.RuneLen(r)
		if n < 0 {
			r, n = utf8.RuneError, 3
		}
		if b.Len()+n > max {
			return cut(b.String(), max)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Clip cuts s to at most max bytes at a rune boundary, ending in "…" when
// cut: the one way to bound a value for a message or a field. Unlike
// Sanitize it keeps every character.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return cut(s, max)
}

// cut shortens s so that s plus "…" fits in max bytes.
func cut(s string, max int) string {
	const ellipsis = "…"
	limit := max - len(ellipsis)
	if limit <= 0 {
		return ""
	}
	for limit > 0 && limit < len(s) && !utf8.RuneStart(s[limit]) {
		limit--
	}
	return s[:min(limit, len(s))] + ellipsis
}
