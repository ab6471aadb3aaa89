package volume

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The LVM2 text metadata is in LVM's configuration syntax:
//
//	name = value          value: "string", 123, or [ v, v, ... ]
//	name { ... }          a section
//	# comment
//
// cfgSection holds one parsed section.

type cfgValue struct {
	kind cfgKind
	str  string // string, or the word as written for a number or word
	num  int64
	list []cfgValue
}

type cfgKind uint8

const (
	cfgString cfgKind = iota + 1
	cfgNumber
	cfgWord // an unquoted value that is not an integer
	cfgList
)

type cfgSection struct {
	name     string
	values   map[string]cfgValue
	sections []*cfgSection
}

func (s *cfgSection) section(name string) *cfgSection {
	for _, c := range s.sections {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (s *cfgSection) str(name string) (string, error) {
	v, ok := s.values[name]
	if !ok {
		return "", fmt.Errorf("%s: %s missing", s.name, name)
	}
	if v.kind != cfgString {
		return "", fmt.Errorf("%s: %s is not a string", s.name, name)
	}
	return v.str, nil
}

func (s *cfgSection) num(name string) (int64, error) {
	v, ok := s.values[name]
	if !ok {
		return 0, fmt.Errorf("%s: %s missing", s.name, name)
	}
	if v.kind != cfgNumber {
		return 0, fmt.Errorf("%s: %s is not an integer", s.name, name)
	}
	return v.num, nil
}

// strings returns a list of strings; a missing value is an empty list.
func (s *cfgSection) strings(name string) ([]string, error) {
	v, ok := s.values[name]
	if !ok {
		return nil, nil
	}
	if v.kind != cfgList {
		return nil, fmt.Errorf("%s: %s is not a list", s.name, name)
	}
	out := make([]string, 0, len(v.list))
	for _, e := range v.list {
		if e.kind != cfgString {
			return nil, fmt.Errorf("%s: %s holds a non-string", s.name, name)
		}
		out = append(out, e.str)
	}
	return out, nil
}

const maxCfgDepth = 32

type cfgParser struct {
	src []byte
	pos int
	// peeked token
	tok     cfgToken
	hasPeek bool
}

type cfgTokKind uint8

const (
	tokEOF cfgTokKind = iota
	tokWord
	tokString
	tokPunct
)

type cfgToken struct {
	kind cfgTokKind
	text string
	pos  int
}

// parseConfig parses LVM configuration text into a root section.
func parseConfig(src []byte) (*cfgSection, error) {
	p := &cfgParser{src: src}
	root := &cfgSection{name: "(top)", values: map[string]cfgValue{}}
	if err := p.body(root, 0); err != nil {
		return nil, err
	}
	return root, nil
}

func (p *cfgParser) errf(pos int, format string, args ...any) error {
	line := 1 + strings.Count(string(p.src[:min(pos, len(p.src))]), "\n")
	return fmt.Errorf("metadata line %d: %s", line, fmt.Sprintf(format, args...))
}

func (p *cfgParser) body(s *cfgSection, depth int) error {
	for {
		t, err := p.next()
		if err != nil {
			return err
		}
		switch {
		case t.kind == tokEOF:
			if depth > 0 {
				return p.errf(t.pos, "section %s not closed", s.name)
			}
			return nil
		case t.kind == tokPunct && t.text == "}":
			if depth == 0 {
				return p.errf(t.pos, "unexpected }")
			}
			return nil
		case t.kind == tokWord:
		default:
			return p.errf(t.pos, "expected a name, found %q", t.text)
		}
		name := t.text
		op, err := p.next()
		if err != nil {
			return err
		}
		switch {
		case op.kind == tokPunct && op.text == "{":
			if depth+1 > maxCfgDepth {
				return p.errf(op.pos, "sections nested too deep")
			}
			c := &cfgSection{name: name, values: map[string]cfgValue{}}
			if err := p.body(c, depth+1); err != nil {
				return err
			}
			s.sections = append(s.sections, c)
		case op.kind == tokPunct && op.text == "=":
			v, err := p.value(true)
			if err != nil {
				return err
			}
			s.values[name] = v
		default:
			return p.errf(op.pos, "expected = or { after %s", name)
		}
	}
}

func (p *cfgParser) value(allowList bool) (cfgValue, error) {
	t, err := p.next()
	if err != nil {
		return cfgValue{}, err
	}
	switch t.kind {
	case tokString:
		return cfgValue{kind: cfgString, str: t.text}, nil
	case tokWord:
		if n, err := strconv.ParseInt(t.text, 10, 64); err == nil {
			return cfgValue{kind: cfgNumber, num: n, str: t.text}, nil
		}
		return cfgValue{kind: cfgWord, str: t.text}, nil
	case tokPunct:
		if t.text == "[" && allowList {
			v := cfgValue{kind: cfgList}
			for {
				t, err := p.peek()
				if err != nil {
					return cfgValue{}, err
				}
				if t.kind == tokPunct && t.text == "]" {
					p.hasPeek = false
					return v, nil
				}
				if t.kind == tokPunct && t.text == "," {
					p.hasPeek = false
					continue
				}
				e, err := p.value(false)
				if err != nil {
					return cfgValue{}, err
				}
				v.list = append(v.list, e)
			}
		}
	}
	if t.kind == tokEOF {
		return cfgValue{}, p.errf(t.pos, "value missing at end of text")
	}
	return cfgValue{}, p.errf(t.pos, "unexpected %q", t.text)
}

func (p *cfgParser) peek() (cfgToken, error) {
	if p.hasPeek {
		return p.tok, nil
	}
	t, err := p.lex()
	if err != nil {
		return t, err
	}
	p.tok, p.hasPeek = t, true
	return t, nil
}

func (p *cfgParser) next() (cfgToken, error) {
	if p.hasPeek {
		p.hasPeek = false
		return p.tok, nil
	}
	return p.lex()
}

var errUnterminated = errors.New("unterminated string")

func (p *cfgParser) lex() (cfgToken, error) {
	src := p.src
	for p.pos < len(src) {
		c := src[p.pos]
		if c == '#' {
			for p.pos < len(src) && src[p.pos] != '\n' {
				p.pos++
			}
			continue
		}
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' {
			p.pos++
			continue
		}
		break
	}
	start := p.pos
	if p.pos >= len(src) {
		return cfgToken{kind: tokEOF, pos: start}, nil
	}
	c := src[p.pos]
	switch c {
	case '{', '}', '[', ']', '=', ',':
		p.pos++
		return cfgToken{kind: tokPunct, text: string(c), pos: start}, nil
	case '"':
		var b strings.Builder
		p.pos++
		for p.pos < len(src) {
			c := src[p.pos]
			switch c {
			case '"':
				p.pos++
				return cfgToken{kind: tokString, text: b.String(), pos: start}, nil
			case '\\':
				if p.pos+1 >= len(src) {
					return cfgToken{}, p.errf(start, "%v", errUnterminated)
				}
				b.WriteByte(src[p.pos+1])
				p.pos += 2
			default:
				b.WriteByte(c)
				p.pos++
			}
		}
		return cfgToken{}, p.errf(start, "%v", errUnterminated)
	}
	for p.pos < len(src) {
		switch src[p.pos] {
		case '{', '}', '[', ']', '=', ',', '"', '#', ' ', '\t', '\n', '\r', '\f', '\v':
			return cfgToken{kind: tokWord, text: string(src[start:p.pos]), pos: start}, nil
		}
		p.pos++
	}
	return cfgToken{kind: tokWord, text: string(src[start:]), pos: start}, nil
}
