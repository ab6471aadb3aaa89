package chart

import (
	"encoding/xml"
	"errors"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
)

// hostile is a label a user could give a VM or a policy.
const hostile = `<script>alert("x")</script>&"'`

// svgDoc is what checkSVG learned while parsing a chart.
type svgDoc struct {
	root     map[string]string
	classes  []string // class attribute of every element
	texts    []string // character data of <text> elements
	titles   []string // character data of <title> elements
	desc     string
	elements map[string]int // count by element name
}

func (d *svgDoc) hasClass(c string) bool {
	for _, cl := range d.classes {
		for _, f := range strings.Fields(cl) {
			if f == c {
				return true
			}
		}
	}
	return false
}

func (d *svgDoc) hasText(s string) bool {
	for _, t := range d.texts {
		if t == s {
			return true
		}
	}
	return false
}

// numeric attributes must hold finite numbers.
var numericAttrs = map[string]bool{
	"x": true, "y": true, "x1": true, "x2": true, "y1": true, "y2": true,
	"cx": true, "cy": true, "r": true, "width": true, "height": true, "rx": true,
}

// checkSVG parses out as XML and checks the invariants every chart keeps:
// one <svg> root with viewBox, role="img" and aria-labelledby naming its
// <title> and <desc>; no style attribute, no script; finite coordinates.
func checkSVG(t *testing.T, out template.HTML) *svgDoc {
	t.Helper()
	s := string(out)
	if strings.Contains(strings.ToLower(s), "style=") {
		t.Errorf("output has a style attribute: %.200s", s)
	}
	if strings.Contains(strings.ToLower(s), "<script") {
		t.Errorf("output has a script element")
	}
	doc := &svgDoc{elements: map[string]int{}}
	ids := map[string]string{} // id → element name
	dec := xml.NewDecoder(strings.NewReader(s))
	dec.Strict = true
	var stack []string
	var text strings.Builder
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%.500s", err, s)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			name := tok.Name.Local
			doc.elements[name]++
			if len(stack) == 0 && doc.root != nil {
				t.Fatalf("more than one root element")
			}
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				attrs[a.Name.Local] = a.Value
				if a.Name.Local == "style" || strings.HasPrefix(strings.ToLower(a.Name.Local), "on") {
					t.Errorf("forbidden attribute %s on <%s>", a.Name.Local, name)
				}
				if numericAttrs[a.Name.Local] && !(len(stack) == 0 && a.Name.Local == "width") {
					if v, err := strconv.ParseFloat(a.Value, 64); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
						t.Errorf("<%s %s=%q>: not a finite number", name, a.Name.Local, a.Value)
					}
				}
				if a.Name.Local == "d" && (strings.Contains(a.Value, "NaN") || strings.Contains(a.Value, "Inf")) {
					t.Errorf("path with non-finite coordinates: %.100s", a.Value)
				}
				if a.Name.Local == "id" {
					ids[a.Value] = name
				}
			}
			if c, ok := attrs["class"]; ok {
				doc.classes = append(doc.classes, c)
			}
			if len(stack) == 0 {
				if name != "svg" {
					t.Fatalf("root is <%s>, want <svg>", name)
				}
				doc.root = attrs
			}
			stack = append(stack, name)
			text.Reset()
		case xml.CharData:
			text.Write(tok)
		case xml.EndElement:
			depth--
			name := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			switch name {
			case "text":
				doc.texts = append(doc.texts, text.String())
			case "title":
				doc.titles = append(doc.titles, text.String())
			case "desc":
				doc.desc = text.String()
			}
			text.Reset()
		}
	}
	if doc.root == nil {
		t.Fatalf("no root element")
	}
	if depth != 0 {
		t.Fatalf("unbalanced elements")
	}
	if doc.elements["script"] > 0 {
		t.Errorf("script element")
	}
	r := doc.root
	if r["xmlns"] != "http://www.w3.org/2000/svg" {
		t.Errorf("xmlns = %q", r["xmlns"])
	}
	if r["role"] != "img" {
		t.Errorf("role = %q, want img", r["role"])
	}
	if vb := strings.Fields(r["viewBox"]); len(vb) != 4 {
		t.Errorf("viewBox = %q", r["viewBox"])
	}
	labelled := strings.Fields(r["aria-labelledby"])
	if len(labelled) != 2 || ids[labelled[0]] != "title" || ids[labelled[1]] != "desc" {
		t.Errorf("aria-labelledby = %q does not name a <title> and a <desc> (ids %v)", r["aria-labelledby"], ids)
	}
	if doc.desc == "" {
		t.Errorf("empty <desc>")
	}
	return doc
}

func TestEsc(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{hostile, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#34;&#39;"},
		{"bad\x00byte\xff", "bad\uFFFDbyte\uFFFD"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := esc(tt.in); got != tt.want {
			t.Errorf("esc(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly-10", 10, "exactly-10"},
		{"a-very-long-vm-name-indeed", 10, "a-very-lo…"},
		{"ääääääääääää", 5, "ääää…"},
		{"  padded  ", 10, "padded"},
		{"word word word", 6, "word…"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestClassName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"failed", "failed"},
		{"Warning", "warning"},
		{`"><script>`, "script"},
		{"in progress", "in-progress"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := className(tt.in); got != tt.want {
			t.Errorf("className(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestChartID(t *testing.T) {
	tests := []struct{ given, want string }{
		{"capacity", "capacity"},
		{`x"><script>`, "xscript"},
		{"42", "chart-42"},
		{"-a", "chart--a"},
	}
	for _, tt := range tests {
		if got := chartID(tt.given, func(*idHash) {}); got != tt.want {
			t.Errorf("chartID(%q) = %q, want %q", tt.given, got, tt.want)
		}
	}
	a := chartID("", func(h *idHash) { h.str("a") })
	b := chartID("", func(h *idHash) { h.str("b") })
	if a == b || a != chartID("", func(h *idHash) { h.str("a") }) {
		t.Errorf("derived ids not distinct and stable: %q %q", a, b)
	}
}

// contrast is the WCAG contrast ratio of a #rrggbb colour against white.
func contrast(hex string) float64 {
	lin := func(c float64) float64 {
		c /= 255
		if c <= 0.03928 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	v, _ := strconv.ParseUint(hex[1:], 16, 32)
	r, g, b := float64(v>>16&0xff), float64(v>>8&0xff), float64(v&0xff)
	l := 0.2126*lin(r) + 0.7152*lin(g) + 0.0722*lin(b)
	return 1.05 / (l + 0.05)
}

func TestPaletteContrast(t *testing.T) {
	colors := map[string]string{"text": textColor, "muted": mutedColor, "reference": refColor}
	for i := 0; i < 6; i++ {
		colors["series-"+strconv.Itoa(i)] = seriesColor(i)
	}
	for _, s := range []string{"ok", "warning", "failed", "skipped", "other"} {
		colors["state-"+s] = stateColor(s)
	}
	seen := map[string]string{}
	for name, c := range colors {
		min := 3.0 // graphics
		if name == "text" || name == "muted" || name == "reference" {
			min = 4.5 // text
		}
		if got := contrast(c); got < min {
			t.Errorf("%s %s: contrast %.2f:1 against white, want ≥ %.1f:1", name, c, got, min)
		}
		if strings.HasPrefix(name, "series-") {
			if other, dup := seen[c]; dup {
				t.Errorf("%s and %s share colour %s", name, other, c)
			}
			seen[c] = name
		}
	}
	if seriesColor(6) != seriesColor(0) || seriesColor(-1) == "" {
		t.Errorf("palette does not cycle")
	}
}
