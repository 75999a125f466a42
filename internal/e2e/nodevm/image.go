package nodevm

import (
	"bytes"
	"context"
	"errors"
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
	if _, err := exec.LookPath("make"); err != nil {
		return "", errors.New("make is not installed: it builds the node VM image (apt-get install make)")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "make", "-s", "--no-print-directory", "node-image")
	cmd.Dir = root
	cmd.Stdout = &out
	cmd.Stderr = log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("make node-image: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	dir := lines[len(lines)-1]
	return dir, CheckImage(dir)
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
