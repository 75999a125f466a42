package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// maxFile bounds the configuration file.
const maxFile = 4 << 20

// decode overlays the JSON value of r on base. Unknown fields do not stop it:
// they come back as errors with their paths, so that the caller can report
// them together with the validation of the rest; err is a value that cannot
// be decoded at all.
func decode(base Config, r io.Reader) (c Config, unknown []error, err error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFile+1))
	if err != nil {
		return Config{}, nil, fmt.Errorf("config: %w", err)
	}
	if len(data) > maxFile {
		return Config{}, nil, fmt.Errorf("config: larger than %d bytes", maxFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return Config{}, nil, fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return Config{}, nil, errors.New("config: more than one JSON value")
	}
	unknown = unknownFields(tree, reflect.TypeFor[Config](), "")
	if err := json.Unmarshal(data, &base); err != nil {
		return Config{}, unknown, fmt.Errorf("config: %w", err)
	}
	return base, unknown, nil
}

// unknownFields lists the keys of v that no field of t takes, with their
// paths, in a stable order. Like encoding/json, a key matches a field's name
// case-insensitively; a type with its own UnmarshalJSON is not looked into.
func unknownFields(v any, t reflect.Type, prefix string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil // a type error, reported by the decoder
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			field := k
			if prefix != "" {
				field = prefix + "." + k
			}
			f, ok := jsonField(t, k)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown field", field))
				continue
			}
			errs = append(errs, unknownFields(obj[k], f.Type, field)...)
		}
	case reflect.Slice, reflect.Array:
		items, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, it := range items {
			errs = append(errs, unknownFields(it, t.Elem(), fmt.Sprintf("%s[%d]", prefix, i))...)
		}
	}
	return errs
}

// jsonField returns the field of struct t that the JSON key k decodes into.
func jsonField(t reflect.Type, k string) (reflect.StructField, bool) {
	var folded *reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == k {
			return f, true
		}
		if folded == nil && strings.EqualFold(name, k) {
			folded = &f
		}
	}
	if folded != nil {
		return *folded, true
	}
	return reflect.StructField{}, false
}
