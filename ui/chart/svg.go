package chart

import (
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"hash"
	"hash/fnv"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Shared look. Sizes are in viewBox units, which are CSS pixels at the
// default width.
const (
	fontSize   = 11
	charWidth  = 6.2 // average advance of an 11px sans-serif glyph
	textColor  = "#333333"
	mutedColor = "#555555"
	gridColor  = "#dddddd"
	refColor   = "#b3261e"
	noData     = "No data yet"
)

// seriesColor is the fixed palette, cycled by series index. Every colour
// has at least 3:1 contrast against white (WCAG for graphics) and the set
// stays distinguishable for the common colour-vision deficiencies.
func seriesColor(i int) string {
	switch i % 6 {
	case 1:
		return "#047857" // bluish green
	case 2:
		return "#c2410c" // vermillion
	case 3:
		return "#9d3a86" // reddish purple
	case 4:
		return "#6d5a00" // dark yellow
	case 5:
		return "#4b5563" // slate
	}
	return "#0060a8" // blue
}

// stateColor is the fill of a bar in a known state; others get the first
// series colour.
func stateColor(state string) string {
	switch state {
	case "ok", "success", "succeeded":
		return "#2e7d32"
	case "warning", "warn", "partial":
		return "#a85d00"
	case "failed", "failure", "error":
		return "#c62828"
	case "skipped", "cancelled", "canceled":
		return "#6b7280"
	}
	return seriesColor(0)
}

// svgBuf accumulates one SVG document.
type svgBuf struct {
	strings.Builder
}

func (b *svgBuf) f(format string, args ...any) {
	fmt.Fprintf(b, format, args...)
}

// open writes the root element with its title and description.
func (b *svgBuf) open(id, class string, w, h float64, sizeAttrs, title, desc string) {
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" class="chart %s" viewBox="0 0 %s %s" %s role="img" aria-labelledby="%s-title %s-desc" font-family="sans-serif" font-size="%d">`,
		class, num(w), num(h), sizeAttrs, id, id, fontSize)
	b.f(`<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, esc(title), id, esc(desc))
}

func (b *svgBuf) close() template.HTML {
	b.WriteString(`</svg>`)
	// The document is built only from escaped text and numbers.
	return template.HTML(b.String())
}

// noDataText writes the centred "No data yet" message.
func (b *svgBuf) noDataText(w, h float64, size float64) {
	b.f(`<text class="chart-empty" x="%s" y="%s" text-anchor="middle" dominant-baseline="middle" font-size="%s" fill="%s">%s</text>`,
		num(w/2), num(h/2), num(size), mutedColor, noData)
}

// esc escapes s for XML text and attribute values; invalid UTF-8 and
// characters XML forbids become U+FFFD.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// num writes a coordinate with at most one decimal.
func num(v float64) string {
	if !finite(v) {
		v = 0
	}
	v = math.Round(v*10) / 10
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// truncate shortens s to at most n runes, ending in an ellipsis when cut.
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:max(n-1, 1)])) + "…"
}

// textWidth estimates the rendered width of s.
func textWidth(s string) float64 {
	return float64(utf8.RuneCountInString(s)) * charWidth
}

// className turns a user-supplied word into a safe class token: lower-case
// letters, digits and '-' only.
func className(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		case r == '_' || r == ' ':
			b.WriteByte('-')
		}
		if b.Len() >= 32 {
			break
		}
	}
	return b.String()
}

// chartID returns the id prefix for the title and description: the given
// one made safe, or one derived from the content, so that a page with
// several charts gets distinct ids without any shared counter.
func chartID(given string, content func(h *idHash)) string {
	if given != "" {
		var b strings.Builder
		for _, r := range given {
			if r < utf8.RuneSelf && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				b.WriteRune(r)
			}
		}
		if s := b.String(); s != "" {
			if c := s[0]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
				return s
			}
			return "chart-" + s
		}
	}
	h := &idHash{h: fnv.New64a()}
	content(h)
	return fmt.Sprintf("chart-%016x", h.h.Sum64())
}

// idHash feeds chart content into the id hash.
type idHash struct {
	h   hash.Hash64
	buf [8]byte
}

func (h *idHash) str(s string) {
	h.u64(uint64(len(s)))
	_, _ = h.h.Write([]byte(s))
}

func (h *idHash) u64(v uint64) {
	binary.LittleEndian.PutUint64(h.buf[:], v)
	_, _ = h.h.Write(h.buf[:])
}

func (h *idHash) f64(v float64) { h.u64(math.Float64bits(v)) }

func (h *idHash) time(t time.Time) {
	h.u64(uint64(t.Unix()))
	h.u64(uint64(t.Nanosecond()))
}
