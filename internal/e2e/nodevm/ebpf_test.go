package nodevm_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/e2e/nodevm"
)

// TestEBPFCounterOnTheNodeKernel runs the eBPF counter's live tests
// (internal/forkfail TestCounts) and its cost benchmark in the node VM, on
// the kernel Debian ships. There fexit loads (this machine's kernel refuses
// tracing programs), and the VM's kernel is the tests' own: they lower its
// kernel.pid_max and kernel.threads-max, which they never do here. Every
// case must count exactly what the program saw refused, with the right
// label, in both attach modes.
func TestEBPFCounterOnTheNodeKernel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	image := bootable(ctx, t)
	// The programs, built here: the test binary static (no cgo), the C
	// programs static (the VM has no compiler, and its C library may differ).
	dir := t.TempDir()
	forkfail := filepath.Join("..", "..", "forkfail")
	build := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, out)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	files := map[string]string{
		"forkfail.test": build("forkfail.test", "go", "test", "-c", "-o", filepath.Join(dir, "forkfail.test"), "./"+forkfail),
		"groundtruth":   build("groundtruth", "gcc", "-O2", "-static", "-pthread", "-o", filepath.Join(dir, "groundtruth"), filepath.Join(forkfail, "testdata", "groundtruth.c")),
		"cost":          build("cost", "gcc", "-O2", "-static", "-o", filepath.Join(dir, "cost"), filepath.Join(forkfail, "testdata", "cost.c")),
	}
	script, err := os.ReadFile(filepath.Join("testdata", "ebpf", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	// One CPU: with two, QEMU's multi-threaded TCG does not see the
	// kernel's live patching of its own text (the int3 of text_poke_bp
	// when a tracepoint or trampoline is attached) on the other vCPU in
	// time, and the guest panics ("Oops: int3" in
	// syscall_exit_to_user_mode_prepare). Real CPUs are not affected.
	res, err := nodevm.Run(ctx, nodevm.Options{ImageDir: image, Script: string(script), Files: files, Timeout: 10 * time.Minute, CPUs: 1})
	if err != nil {
		t.Fatalf("running the eBPF tests in the node VM: %v", err)
	}
	t.Logf("guest output:\n%s", res.Output)
	facts := parseFacts(res.Output)
	want(t, facts, "tests_rc", equals("0"))
	want(t, facts, "bench_rc", equals("0"))
	// Every case ran and passed in both modes, but the PID namespace's own
	// pid_max, which Linux has only since 6.14 (the VM runs 6.12).
	for _, mode := range []string{"fexit", "tracepoint"} {
		for _, c := range []string{"cgroup-process", "cgroup-thread", "nproc", "node-pid_max", "threads-max"} {
			if line := "--- PASS: TestCounts/" + mode + "/" + c + " "; !strings.Contains(res.Output, line) {
				t.Errorf("TestCounts/%s/%s did not pass in the VM", mode, c)
			}
		}
	}
	if m := regexp.MustCompile(`(?m)^BenchmarkCost\S*\s+1\s+\d+ ns/op(.*)$`).FindStringSubmatch(res.Output); m != nil {
		t.Logf("cost on the node kernel (ratios attached/without):%s", m[1])
	} else {
		t.Errorf("no benchmark result in the output")
	}
}
