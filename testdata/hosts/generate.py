#!/usr/bin/env python3
"""Writes the fake host trees under testdata/hosts/.

Each scenario is a trimmed /proc, /sys and /var of a Kubernetes node, in the
formats of Linux 6.x (checked against the real files of the development
machine, Linux 6.18, where it has them) and the cgroup layouts that kubelet's
systemd and cgroupfs drivers create. Run from the repository root:
python3 testdata/hosts/generate.py. Each scenario's README.md says what it is.
"""
import os, shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)))

def w(base, rel, content):
    p = os.path.join(base, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(content)

LIMITS = """Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max processes             {soft}               {hard}               processes 
Max open files            1048576              1048576              files     
"""

def status(name, state, ppid, uid, threads, nspid="{pid}"):
    return ("Name:\t{name}\nUmask:\t0022\nState:\t{state}\nTgid:\t{{pid}}\nNgid:\t0\nPid:\t{{pid}}\n"
            "PPid:\t{ppid}\nTracerPid:\t0\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
            "NStgid:\t{nspid}\nNSpid:\t{nspid}\nThreads:\t{threads}\n").format(
                name=name, state=state, ppid=ppid, uid=uid, threads=threads, nspid=nspid)

def proc(base, pid, name, state="S (sleeping)", ppid=1, uid=0, threads=1, cgroup="0::/", soft="unlimited", hard="unlimited", nspid=None):
    st = status(name, state, ppid, uid, threads, nspid or str(pid)).replace("{pid}", str(pid))
    w(base, f"proc/{pid}/status", st)
    w(base, f"proc/{pid}/comm", name + "\n")
    w(base, f"proc/{pid}/cgroup", cgroup)
    w(base, f"proc/{pid}/limits", LIMITS.format(soft=soft, hard=hard))
    for t in range(threads):
        w(base, f"proc/{pid}/task/{pid + t}/comm", name + "\n")

def kernel(base, pid_max, threads_max, tasks, last_pid, running=2, nspid="1234"):
    w(base, "proc/sys/kernel/pid_max", f"{pid_max}\n")
    w(base, "proc/sys/kernel/threads-max", f"{threads_max}\n")
    w(base, "proc/sys/kernel/ns_last_pid", f"{last_pid}\n")
    w(base, "proc/loadavg", f"3.12 2.85 2.40 {running}/{tasks} {last_pid}\n")
    w(base, "proc/self/status", status("pidpressure", "R (running)", 1, 0, 8, nspid).replace("{pid}", nspid.split()[0]))

def cg(base, hier, path, current, maxv, rejected=0, peak=None, below=0):
    """A pids cgroup. rejected is what its own limit refused; below, what
    the limits of its descendants refused. On v2 (hier "") the files are
    those of Linux 6.12, as captured from the node VM: pids.events.local
    holds the cgroup's own count, pids.events counts again every refusal
    below it. On v1 pids.events is the only file."""
    d = f"sys/fs/cgroup/{hier}{path}".replace("//", "/")
    w(base, d + "/pids.current", f"{current}\n")
    w(base, d + "/pids.max", f"{maxv}\n")
    if hier == "":
        w(base, d + "/pids.events", f"max {rejected + below}\n")
        w(base, d + "/pids.events.local", f"max {rejected}\n")
    else:
        w(base, d + "/pids.events", f"max {rejected}\n")
    w(base, d + "/cgroup.procs", "")
    if peak is not None:
        w(base, d + "/pids.peak", f"{peak}\n")

def readme(base, text):
    w(base, "README.md", text.strip() + "\n")

POD_A = "0f3e1a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"  # payments/api-7d9f8-x2x4z, at its limit
POD_B = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"  # kube-system/coredns-5d78c9869d-q8k2p
CTR_A = "3f4e5d6c7b8a99aabbccddeeff00112233445566778899aabbccddeeff001122"

def scenario_cgroupv1_cgroupfs():
    b = os.path.join(ROOT, "cgroupv1-cgroupfs")
    shutil.rmtree(b, ignore_errors=True)
    kernel(b, 32768, 127412, 5120, 31002)
    w(b, "sys/fs/cgroup/pids/cgroup.procs", "1\n")
    cg(b, "pids", "/kubepods", 3900, "max", 0)
    cg(b, "pids", "/kubepods/burstable", 3100, "max", 0)
    cg(b, "pids", f"/kubepods/burstable/pod{POD_A}", 2950, 4096, 0)
    cg(b, "pids", f"/kubepods/burstable/pod{POD_A}/{CTR_A}", 2949, "max", 0)
    cg(b, "pids", f"/kubepods/pod{POD_B}", 12, 4096, 0)
    cg(b, "pids", "/system.slice/docker.service", 180, 4915, 0)
    w(b, f"var/log/pods/payments_api-7d9f8-x2x4z_{POD_A}/api/0.log", "")
    proc(b, 1, "systemd", cgroup="12:pids:/init.scope\n1:name=systemd:/init.scope\n")
    proc(b, 2210, "dockerd", threads=40, cgroup="12:pids:/system.slice/docker.service\n1:name=systemd:/system.slice/docker.service\n")
    readme(b, """
# cgroupv1-cgroupfs

cgroup v1 with the pids controller mounted at /sys/fs/cgroup/pids (as on this
development machine and on CentOS 7/Amazon Linux 2 nodes), kubelet with the
cgroupfs driver (kubepods/burstable/pod<uid>/<container id>), Docker.

- kernel.pid_max is the default 32768 with 5120 tasks; docker.service has
  TasksMax 4915 (a value COS once shipped); no kubelet config is readable.
- v1 has no pids.peak.

Written by generate.py.
""")

def scenario_hybrid_no_pids():
    b = os.path.join(ROOT, "hybrid-no-pids-controller")
    shutil.rmtree(b, ignore_errors=True)
    kernel(b, 4194304, 254592, 640, 88122)
    w(b, "sys/fs/cgroup/unified/cgroup.controllers", "\n")
    w(b, "sys/fs/cgroup/unified/system.slice/kubelet.service/cgroup.procs", "3124\n3125\n")
    w(b, "sys/fs/cgroup/systemd/system.slice/kubelet.service/tasks", "3124\n3125\n3126\n")
    proc(b, 1, "systemd", cgroup="1:name=systemd:/init.scope\n0::/init.scope\n")
    readme(b, """
# hybrid-no-pids-controller

Hybrid cgroup layout (v1 controllers plus an empty v2 hierarchy at
/sys/fs/cgroup/unified, as systemd sets up in hybrid mode) with no pids
controller in either: the cgroup layer is not supported and the sampler must
say so while the node layer still works.

Written by generate.py.
""")

def scenario_incident():
    b = os.path.join(ROOT, "pidmax-97pct")
    shutil.rmtree(b, ignore_errors=True)
    kernel(b, 32768, 249047, 31616, 32101, running=9)
    w(b, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
    cg(b, "", "/kubepods.slice", 30880, "max", 0)
    cg(b, "", "/system.slice/kubelet.service", 15, "max", 0)
    proc(b, 3124, "kubelet", threads=15, cgroup="0::/system.slice/kubelet.service\n", soft="249047", hard="249047")
    readme(b, """
# pidmax-97pct

The incident (README.md): kernel.pid_max = 32768 with 31,616 tasks, 97 %
of the 32,468 usable PIDs (allocation has wrapped: ns_last_pid > 300),
kubelet running 15 threads with `ulimit -u` 249047, no pids limit binding.
The binding limit is pid_max.

Written by generate.py: a node of the incident's size (31,616 tasks) is
more than the node VM holds; the VM's own incident is captured nowhere as a
tree, since the agent reads it live (TestNode/Incident). The cgroup v2 trees
of a real node are the cgroupv2-node-vm-* ones, captured.
""")

def scenario_threads_max():
    b = os.path.join(ROOT, "threads-max-binding")
    shutil.rmtree(b, ignore_errors=True)
    kernel(b, 4194304, 20000, 19950, 2501344)
    w(b, "sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n")
    cg(b, "", "/kubepods.slice", 18000, "max", 0)
    proc(b, 1, "systemd", cgroup="0::/init.scope\n")
    readme(b, """
# threads-max-binding

kernel.threads-max (20000, as a small VM's default derived from memory)
below pid_max (4194304): threads-max binds, and 19,950 tasks leave 50.

Written by generate.py: the kernel files alone matter here (the node VM's
threads-max binds too, at 23696, in the captured cgroupv2-node-vm-* trees).
""")

def scenario_nested():
    b = os.path.join(ROOT, "nested-pid-namespace")
    shutil.rmtree(b, ignore_errors=True)
    kernel(b, 400, 192730, 412, 399, nspid="88121\t1")
    proc(b, 1, "bash", threads=1, nspid="88121\t1")
    proc(b, 2, "worker", threads=297, nspid="88122\t2")
    proc(b, 300, "worker", threads=90, nspid="88500\t300")
    readme(b, """
# nested-pid-namespace

The sampler in a child PID namespace (NSpid of /proc/self/status has two
entries), as a pod without hostPID sees the node, and as the tests exhaust a
namespace whose pid_max is 400 (Linux 6.14+ keeps pid_max per namespace).
/proc/loadavg's 412 tasks are the host's; the namespace has 388 tasks in
/proc/*/task, and those are what count against its pid_max. 298 of them hold
PIDs below 300; allocation has passed 300 (ns_last_pid 399), so new PIDs come
from [300, 400): the namespace holds 100 + 298 = 398 tasks, 10 free.

Written by generate.py.
""")

for f in [scenario_cgroupv1_cgroupfs, scenario_hybrid_no_pids, scenario_incident, scenario_threads_max, scenario_nested]:
    f()
