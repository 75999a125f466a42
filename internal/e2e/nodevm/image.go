package nodevm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ImageEnv names the environment variable that points the tests at a built
// image directory; make test-e2e sets it.
const ImageEnv = "NODEVM_IMAGE"

// Image returns the directory of the node VM image: $NODEVM_IMAGE if set,
// otherwise the cache that `make node-image` fills in the repository found
// at or above the working directory (building it once, under a lock, if it
// is empty: about 40 s on 2 cores, with apt's mirror). Build output goes to
// log.
func Image(ctx context.Context, log io.Writer) (string, error) {
	if dir := os.Getenv(ImageEnv); dir != "" {
		return dir, CheckImage(dir)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	dir, err := MakeDir(ctx, root, "node-image", log)
	if err != nil {
		return "", err
	}
	return dir, CheckImage(dir)
}

// MakeDir runs `make target` in the repository at root, which builds what
// the target names once, cached, and prints its directory last; it returns
// that directory. The build's output goes to log.
func MakeDir(ctx context.Context, root, target string, log io.Writer) (string, error) {
	if _, err := exec.LookPath("make"); err != nil {
		return "", fmt.Errorf("make is not installed: it builds %s (apt-get install make)", target)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "make", "-s", "--no-print-directory", target)
	cmd.Dir = root
	cmd.Stdout = &out
	cmd.Stderr = log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("make %s: %w", target, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[len(lines)-1], nil
}

// repoRoot finds the repository root (the directory holding hack/nodevm)
// from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "hack", "nodevm", "build.sh")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no hack/nodevm above %s: run from inside the pidpressure repository", dir)
		}
	}
}
