package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestConfigReference holds docs/configuration.md to the config types: it
// documents every JSON field (leaves; a struct's fields in dotted form),
// only those, each with the embedded default.
func TestConfigReference(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // field -> default cell
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([^|]+) \\|").FindAllStringSubmatch(string(doc), -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	var fields []string
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, prefix string) {
		for i := range ty.NumField() {
			f := ty.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
				walk(f.Type, prefix+name+".")
				continue
			}
			fields = append(fields, prefix+name)
		}
	}
	walk(reflect.TypeFor[Config](), "")

	// The defaults, as JSON values by field path.
	raw, _ := json.Marshal(Default())
	var tree map[string]any
	_ = json.Unmarshal(raw, &tree)
	value := func(path string) any {
		var v any = tree
		for _, k := range strings.Split(path, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		return v
	}
	for _, f := range fields {
		cell, ok := rows[f]
		if !ok {
			t.Errorf("docs/configuration.md does not document %s", f)
			continue
		}
		var want string
		switch v := value(f).(type) {
		case nil: // omitempty: an empty list or string
			want = "`[]`"
			if strings.HasPrefix(cell, "`\"\"`") {
				want = "`\"\"`"
			}
		case string:
			want = "`" + v + "`"
			if v == "" {
				want = "`\"\"`"
			}
		default:
			b, _ := json.Marshal(v)
			want = "`" + string(b) + "`"
		}
		if !strings.HasPrefix(cell, want) {
			t.Errorf("docs/configuration.md: %s defaults to %s, the table says %s", f, want, cell)
		}
	}
	for f := range rows {
		if !slices.Contains(fields, f) {
			t.Errorf("docs/configuration.md documents %s, which is not a config field", f)
		}
	}
}
