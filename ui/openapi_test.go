package ui

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRoutes: every API route is documented with its
// permission, and nothing is documented that does not exist.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s, _, c := startServer(t)
	tok := login(t, s, c)
	code, body := do(t, c, "GET", s.URL()+"/api/v1/openapi.json", tok, "")
	if code != 200 {
		t.Fatalf("openapi.json: %d", code)
	}
	var doc struct {
		OpenAPI string                                       `json:"openapi"`
		Paths   map[string]map[string]map[string]interface{} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("not an OpenAPI 3 document: %v", err)
	}
	documented := map[string]string{}
	for p, ops := range doc.Paths {
		for m, op := range ops {
			perm, _ := op["x-coffer-permission"].(string)
			documented[strings.ToUpper(m)+" /api/v1"+p] = perm
			if op["summary"] == "" || op["summary"] == nil {
				t.Errorf("%s %s has no summary", m, p)
			}
		}
	}
	served := map[string]string{}
	for _, r := range s.Routes() {
		path := r.Path
		var parts []string
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") {
				seg = "{" + seg[1:] + "}"
			}
			parts = append(parts, seg)
		}
		served[r.Method+" "+strings.Join(parts, "/")] = string(r.Perm)
	}
	var problems []string
	for k, perm := range served {
		dp, ok := documented[k]
		switch {
		case !ok:
			problems = append(problems, "undocumented route "+k)
		case dp != perm:
			problems = append(problems, k+": documented permission "+dp+", served "+perm)
		}
	}
	for k := range documented {
		if _, ok := served[k]; !ok {
			problems = append(problems, "documented but not served: "+k)
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}
