package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImageLayout runs the Dockerfile's build step without a container
// engine (make image-layout) and checks what the image would hold: the
// files the Dockerfile and the DaemonSet name, the versions the binaries
// report (the same as the manifests' image tag), and that the binaries need
// only glibc (libsystemd is opened at run time, from the runtime stage's
// libsystemd0).
func TestImageLayout(t *testing.T) {
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RUN make image-layout DEST=/rootfs", "COPY --from=build /rootfs/ /", `ENTRYPOINT ["/node-problem-detector"]`, "libsystemd0"} {
		if !strings.Contains(string(dockerfile), want) {
			t.Errorf("the Dockerfile no longer has %q", want)
		}
	}
	dest := t.TempDir()
	cmd := exec.Command("make", "-s", "--no-print-directory", "image-layout", "DEST="+dest)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image-layout: %v\n%s", err, out)
	}
	for _, f := range []string{"node-problem-detector", "usr/local/bin/pidpressure", "config/pid-pressure-monitor.json", "config/pid-pressure-plugin.json"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("the image lacks /%s: %v", f, err)
		}
	}
	npd := filepath.Join(dest, "node-problem-detector")
	v := strings.TrimSpace(string(run(t, npd, "--version")))
	cli := strings.TrimSpace(string(run(t, filepath.Join(dest, "usr", "local", "bin", "pidpressure"), "version")))
	m := regexp.MustCompile(`^pidpressure-(\S+)\+npd-v1\.36\.0$`).FindStringSubmatch(v)
	if m == nil || cli != "pidpressure "+m[1] {
		t.Fatalf("versions: node-problem-detector %q, pidpressure %q", v, cli)
	}
	// The manifests run the image of that version.
	k, h := render(t)
	for name, stream := range map[string][]byte{"kustomize": k.base, "helm": h.base} {
		if !strings.Contains(string(stream), "image: pidpressure/node-problem-detector:"+m[1]+"\n") {
			t.Errorf("%s does not deploy the image of version %s", name, m[1])
		}
		if !strings.Contains(string(stream), `command: ["/node-problem-detector"]`) && !strings.Contains(string(stream), "- /node-problem-detector\n") {
			t.Errorf("%s does not run /node-problem-detector", name)
		}
	}
	for _, bin := range []string{npd, filepath.Join(dest, "usr", "local", "bin", "pidpressure")} {
		out := string(run(t, "ldd", bin))
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			lib := strings.Fields(l)[0]
			if !strings.HasPrefix(lib, "linux-vdso") && !strings.HasPrefix(lib, "libc.so") && !strings.Contains(lib, "ld-linux") {
				t.Errorf("%s needs %s, which the runtime image may not have", filepath.Base(bin), lib)
			}
		}
	}
}
