package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := NewStore(t.TempDir())
	st, err := s.Load()
	if err != nil || st.Journal.Cursor != "" || st.PidsEvents == nil {
		t.Fatalf("Load(missing) = %+v, %v; want empty state", st, err)
	}
	st.Journal.Cursor = "s=abc;i=12"
	st.Kmsg = KmsgPos{BootID: "3d12", Seq: 339}
	st.PidsEvents["v2:/kubepods.slice"] = 3187
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	entries, _ := os.ReadDir(filepath.Dir(s.Path()))
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files, want only the state file (no temporaries)", len(entries))
	}
}

func TestCorruptIsReplaced(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"truncated":     `{"version":1,"journal":{"cursor":"s=ab`,
		"garbage":       "\x00\xff\xfe not json",
		"wrong version": `{"version":99}`,
		"empty":         "",
		"huge":          `{"version":1,"journal":{"cursor":"` + strings.Repeat("x", maxSize+10) + `"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := NewStore(dir)
			if err := os.WriteFile(s.Path(), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := s.Load()
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Load() error = %v, want ErrCorrupt", err)
			}
			if st.Journal.Cursor != "" || st.PidsEvents == nil {
				t.Errorf("Load() state = %+v, want empty", st)
			}
			st.Kmsg.Seq = 5
			if err := s.Save(st); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Load(); err != nil || got.Kmsg.Seq != 5 {
				t.Errorf("after replace: %+v, %v", got, err)
			}
		})
	}
}

func TestSaveErrors(t *testing.T) {
	t.Parallel()
	s := NewStore(filepath.Join(t.TempDir(), "missing-dir"))
	if err := s.Save(State{}); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}
