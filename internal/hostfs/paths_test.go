package hostfs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// readPaths parses the module's non-test Go files under dir and returns,
// for each place that reads under a host root, the path it reads relative
// to the root as far as it is constant (root.VarPath("log", "pods") is
// var/log/pods, root.ProcPath(pid, "status") and root.Proc are proc), with
// the place it was found.
func readPaths(t *testing.T, dir string) map[string][]string {
	t.Helper()
	fields := map[string]string{"ProcPath": "proc", "SysPath": "sys", "VarPath": "var", "Proc": "proc", "Sys": "sys", "Var": "var"}
	found := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// testdata, hidden directories and nested modules (internal/e2e)
			// are not the agent.
			if p != dir && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || fileExists(filepath.Join(p, "go.mod"))) {
				return filepath.SkipDir
			}
			if filepath.Base(p) == "hostfs" {
				return filepath.SkipDir // the accessors themselves
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		calls := map[ast.Expr]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok {
				calls[c.Fun] = true
			}
			return true
		})
		ast.Inspect(f, func(n ast.Node) bool {
			var sel *ast.SelectorExpr
			var args []ast.Expr
			switch n := n.(type) {
			case *ast.CallExpr:
				s, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || !strings.HasSuffix(s.Sel.Name, "Path") {
					return true
				}
				sel, args = s, n.Args
			case *ast.SelectorExpr:
				if calls[n] || strings.HasSuffix(n.Sel.Name, "Path") {
					return true
				}
				sel = n
			default:
				return true
			}
			top, ok := fields[sel.Sel.Name]
			if !ok {
				return true
			}
			elems := []string{top}
			for _, a := range args {
				lit, ok := a.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					break
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("%s: %v", fset.Position(lit.Pos()), err)
				}
				elems = append(elems, s)
			}
			key := path.Join(elems...)
			found[key] = append(found[key], fset.Position(sel.Pos()).String())
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// under reports whether p is base or inside it.
func under(p, base string) bool {
	return p == base || strings.HasPrefix(p, base+"/")
}

// TestPathsCoverReaders holds Paths to the code: every path read under a
// host root is inside one of them, and each of them is read.
func TestPathsCoverReaders(t *testing.T) {
	t.Parallel()
	found := readPaths(t, filepath.Join("..", ".."))
	if len(found) == 0 {
		t.Fatal("no reads under a host root found: the parser no longer sees them")
	}
	paths := Paths()
	for p, where := range found {
		if !slices.ContainsFunc(paths, func(base string) bool { return under(p, base) }) {
			t.Errorf("%s is read under the host root (%s) but is not in Paths: add it (and mount it in deploy/)", p, strings.Join(where, ", "))
		}
	}
	for _, base := range paths {
		used := false
		for p := range found {
			used = used || under(p, base)
		}
		if !used {
			t.Errorf("Paths lists %s, which nothing reads", base)
		}
	}
}
