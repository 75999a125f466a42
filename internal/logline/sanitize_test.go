package logline

import (
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{name: "plain", in: "fork: retry: Resource temporarily unavailable", max: 100, want: "fork: retry: Resource temporarily unavailable"},
		{name: "empty", in: "", max: 10, want: ""},
		{name: "controls and newlines", in: "a\x1b[31mb\r\n\tc\x00d", max: 100, want: "a [31mb c d"},
		{name: "invalid utf8", in: "ok\xff\xfeend", max: 100, want: "ok\uFFFD\uFFFDend"},
		{name: "leading and trailing space", in: "  x  ", max: 100, want: "x"},
		{name: "cut at rune boundary", in: "ééééé", max: 7, want: "éé…"},
		{name: "cut ascii", in: "abcdefghij", max: 6, want: "abc…"},
		{name: "tiny max", in: "abcdef", max: 2, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Sanitize(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("Sanitize(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if len(got) > tt.max {
				t.Errorf("Sanitize(%q, %d) is %d bytes, over max", tt.in, tt.max, len(got))
			}
		})
	}
}

func FuzzSanitize(f *testing.F) {
	f.Add("kubelet\x00\xff cannot\n create", 40)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		got := Sanitize(s, max)
		if len(got) > max {
			t.Fatalf("Sanitize() = %d bytes, max %d", len(got), max)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("Sanitize() kept control character %U", r)
			}
		}
	})
}

func TestClip(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer value", 10, "a longe…"}, // 7 bytes and the 3-byte ellipsis
		{"ééééé", 8, "éé…"},                // never half a rune: 2+2 bytes, then the 3-byte ellipsis
		{"abc", 2, ""},                     // no room for a character and the ellipsis
	} {
		got := Clip(c.in, c.max)
		if got != c.want || len(got) > max(c.max, len(c.in)) || !utf8.ValidString(got) {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
