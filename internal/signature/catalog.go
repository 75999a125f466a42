package signature

// Building blocks of the built-in patterns.
const (
	// eagainText is how a line says EAGAIN. Rules whose pattern requires it
	// anchor on eagainAnchors, which name every alternative.
	eagainText = `(?:resource temporarily unavailable|resource (?:temporarily )?not available|eagain|wouldblock|os error 11\b|errno\s*[=:]?\s*11\b)`
	// createErrText is how a line says EAGAIN or ENOMEM, the two errnos of a
	// failed fork/clone.
	createErrText = `(?:resource temporarily unavailable|resource (?:temporarily )?not available|eagain|wouldblock|cannot allocate memory|enomem|os error 1[12]\b|errno\s*[=:]?\s*1[12]\b|error\s*[=:]\s*1[12]\b)`
	// failVerb introduces a failure to do something.
	failVerb = `(?:cannot|can't|can not|could not|couldn't|unable to|failed to|fail to|failure to|not able to)`
	// ioContext is EAGAIN that belongs to I/O, locks or sockets, not to task
	// creation: "read udp …: resource temporarily unavailable",
	// "Could not get lock … (11: Resource temporarily unavailable)".
	ioContext = `\b(?:read|write|recv\w*|send\w*|accept4?|dial|connect|listen|bind|lookup|e?poll\w*|flock|lockf?|fcntl|ioctl|socket|udp|tcp|unix|pipe|fifo|tty|pty|mmap|open|lock(?:ed|file)?)\b[^\n]{0,40}?(?:resource temporarily unavailable|eagain)`
)

// eagainAnchors are literals of which every match of eagainText contains one.
var eagainAnchors = []string{"resource temporarily unavailable", "resource temporarily not available",
	"resource not available", "eagain", "wouldblock", "os error 11", "errno"}

// builtin is the catalog, in priority order: the first rule that matches a
// line names it. Specific programs come first so that a line is attributed to
// the program that wrote it; generic rules come last and catch the phrasing
// of programs the catalog does not know. Each ID has positive and near-miss
// lines in testdata/corpus.
var builtin = []Rule{
	// Kernel (kernel/cgroup/pids.c, pids_event): printed once per cgroup, the
	// first time a fork is refused there; pids.events counts every refusal.
	{
		ID: "PidsControllerForkRejected", Family: "kernel", Class: ClassProcess, Strength: Definitive, Kernel: true,
		Anchors: []string{"fork rejected by pids controller"},
		Pattern: `fork rejected by pids controller in (?P<cgroup>\S+)`,
	},

	// Go runtime (runtime/os_linux.go newosproc, runtime/cgo/gcc_libinit.c,
	// runtime/proc.go checkmcount).
	{
		ID: "GoThreadCreateFailed", Family: "go", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"failed to create new os thread"},
		Pattern: `failed to create new os thread(?:\s*\(have (?P<threads>\d+) already;\s*errno=(?P<errno>-?\d+)\))?`,
	},
	{
		ID: "GoNewosprocFatal", Family: "go", Class: ClassThread, Strength: Corroborate,
		Anchors: []string{"fatal error: newosproc"},
		Pattern: `fatal error: newosproc\b`,
	},
	{
		ID: "GoMaxUserProcessesHint", Family: "go", Class: ClassThread, Strength: Corroborate,
		Anchors: []string{"may need to increase max user processes"},
		Pattern: `may need to increase max user processes`,
	},
	{
		ID: "GoThreadLimitExceeded", Family: "go", Class: ClassThread, Strength: Corroborate,
		Anchors: []string{"-thread limit", "fatal error: thread exhaustion"},
		Pattern: `program exceeds (?P<limit>\d+)-thread limit|fatal error: thread exhaustion`,
	},
	{
		ID: "CgoPthreadCreateFailed", Family: "go", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"runtime/cgo: pthread_create failed"},
		Pattern: `runtime/cgo: pthread_create failed(?::\s*(?P<errtext>[^\n]*))?`,
	},

	// OCI runtimes and the container runtimes that run them.
	{
		ID: "OCIRuntimeCreateFailed", Family: "oci", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: eagainAnchors,
		Pattern: `\b(?:oci runtime|runc|crun|youki|containerd|shim|container init|container process|nsenter|nsexec|exec failed|error response from daemon)\b[^\n]*?\b(?:fork/exec\s+(?P<program>[^:\s]+)|v?fork|clone3?|pthread_create|newosproc|new os thread|spawn\w*)\b[^\n]{0,120}?` + eagainText +
			`|fork/exec\s+(?P<program>[^:\s]*(?:runc|crun|youki|containerd|shim|dockerd?|conmon)[^:\s]*):\s*` + eagainText,
		Reject: ioContext,
	},
	{
		ID: "GoForkExecFailed", Family: "go", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"fork/exec"},
		Pattern: `fork/exec (?P<program>[^:\n]*?):\s*(?P<errtext>[^\n:]+)`,
	},

	// Shells: bash (jobs.c make_child), dash, busybox ash, zsh, ksh, tcsh.
	//
	// bash retries a fork only after it failed with EAGAIN, saying "fork:
	// retry: …" each time (older bash clobbers errno first: "No child
	// processes"). When a signal (a child's SIGCHLD) interrupts its sleep
	// between retries, it gives up with "fork: Interrupted system call":
	// fork itself never fails with EINTR, so that line also follows an
	// EAGAIN (captured here in a full pids cgroup, testdata/captured/bash.txt).
	{
		ID: "ShellForkRetry", Family: "shell", Class: ClassProcess, Strength: Definitive,
		Anchors: []string{"fork: retry", "fork: interrupted system call"},
		Pattern: `fork: retry: (?P<errtext>[^\n]*)|(?:\bbash(?:\[\d+\])?|:\s+line \d+):\s+fork: (?P<errtext>interrupted system call)`,
	},
	{
		ID: "ShellForkFailed", Family: "shell", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"fork", "no more processes", "too many processes"},
		Pattern: `(?:(?:^|[\s\[(/])-?(?:ba|z|k|mk|da|tc|c|a|fi|busybox )?sh|[\w./-]+\.sh)(?:\[\d+\])?:\s+(?:line \d+:\s+|\d+:\s+)?(?:fork:\s*(?P<errtext>[^\n]*)|(?:cannot|can't|unable to) fork\b[^\n]*|fork failed\b[^\n]*)|\bno more processes\b|fork failed - too many processes|cannot fork: too many processes`,
	},

	// Java / HotSpot (os_linux.cpp os::create_thread, ProcessImpl).
	{
		ID: "JavaNativeThreadOOM", Family: "jvm", Class: ClassThread, Strength: Definitive,
		Anchors: []string{"native thread"},
		Pattern: `unable to create (?:new )?native thread`,
	},
	{
		ID: "JavaThreadStartFailed", Family: "jvm", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"failed to start thread", "failed to start the native thread"},
		Pattern: `failed to start (?:thread\b[^\n]*?pthread_create failed \((?P<errtext>\w+)\)|the native thread for (?P<program>[^\n]+))`,
	},
	{
		ID: "JavaGCThreadCreateFailed", Family: "jvm", Class: ClassThread, Strength: Corroborate,
		Anchors: []string{"out of system resources"},
		Pattern: `cannot create (?:worker )?(?:gc |vm |compiler |java )?thread\b[^\n]*out of system resources`,
	},
	{
		ID: "JavaProcessStartFailed", Family: "jvm", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"cannot run program", "ioexception: error="},
		Pattern: `(?:cannot run program "(?P<program>[^"]*)"[^\n]*?|java\.io\.ioexception: )error=(?P<errno>\d+)`,
	},

	// Python (Modules/_threadmodule.c).
	{
		ID: "PythonThreadStartFailed", Family: "python", Class: ClassThread, Strength: Definitive,
		Anchors: []string{"start new thread", "create new thread"},
		Pattern: `(?:can't|cannot|can not) (?:start|create) new thread`,
		Reject:  `at interpreter shutdown`,
	},

	{
		ID: "PythonForkFailed", Family: "python", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"[errno 11]", "[errno 12]"},
		Pattern: `(?:^|[\s\]])(?:[\w.]+\.)?(?:OSError|BlockingIOError|IOError|error)(?:\(\d+\))?: \[errno (?P<errno>1[12])\]`,
		After:   `\b(?:os\.fork|os\.forkpty|_?fork_exec|posix_spawnp?|os\.spawn\w*|_execute_child|popen_fork\.py|forking\.py)\b`,
	},

	// Rust std::thread, tokio, rayon.
	{
		ID: "RustThreadSpawnFailed", Family: "rust", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"failed to spawn thread", "spawn worker thread", "spawn blocking thread"},
		Pattern: `failed to spawn thread|can't spawn (?:worker|blocking) thread`,
	},
	{
		ID: "RayonThreadPoolBuildFailed", Family: "rust", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"threadpoolbuilderror"},
		Pattern: `threadpoolbuilderror\s*\{\s*kind:\s*ioerror\(os\s*\{\s*code:\s*(?P<errno>\d+)`,
	},

	// Node.js / libuv.
	{
		ID: "NodeSpawnFailed", Family: "node", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"eagain", "enomem"},
		Pattern: `\bspawn(?:sync)?(?: (?P<program>[^\s']+))? (?P<errtext>eagain|enomem)\b`,
	},
	{
		ID: "NodeWorkerInitFailed", Family: "node", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"err_worker_init_failed"},
		Pattern: `err_worker_init_failed\]?:?[^\n]*?(?P<errtext>eagain|enomem|$)`,
	},
	{
		ID: "NodeUVThreadCreateFailed", Family: "node", Class: ClassThread, Strength: Corroborate,
		Anchors: []string{"uv_thread_create"},
		Pattern: `uv_thread_create[^\n]*(?:failed|assert|error)|(?:failed|assert|error)[^\n]*uv_thread_create`,
	},

	// systemd (src/core/execute.c, src/basic/process-util.c).
	{
		ID: "SystemdForkFailed", Family: "systemd", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"failed to fork", "failed to spawn"},
		Pattern: `failed to (?:fork(?: off [^:\n]{0,80})?|spawn '[^'\n]*' task|spawn executor|spawn [\w-]+ helper):\s*(?P<errtext>[^\n]+)`,
	},

	// Daemons.
	{
		ID: "NginxForkFailed", Family: "nginx", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"fork() failed while spawning"},
		Pattern: `fork\(\) failed while spawning "(?P<program>[^"]+)"(?: \((?P<errno>\d+):)?`,
	},
	{
		ID: "NginxThreadCreateFailed", Family: "nginx", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"pthread_create() failed ("},
		Pattern: `pthread_create\(\) failed \((?P<errno>\d+):`,
	},
	{
		ID: "PostgresForkFailed", Family: "postgres", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"could not fork"},
		Pattern: `could not fork (?P<program>[\w -]+?)(?: process)?(?: for [\w ]+?)?:\s*(?P<errtext>[^\n]+)`,
	},
	{
		ID: "ApacheForkFailed", Family: "apache", Class: ClassProcess, Strength: Corroborate,
		Anchors: []string{"unable to fork new process"},
		Pattern: `fork: unable to fork new process`,
	},
	{
		ID: "ApacheThreadCreateFailed", Family: "apache", Class: ClassThread, Strength: Corroborate,
		Anchors: []string{"apr_thread_create"},
		Pattern: `apr_thread_create: unable to create (?:worker |listener |\w+ )?thread`,
	},
	{
		ID: "MySQLThreadCreateFailed", Family: "mysql", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"can't create thread to handle", "can't create a new thread"},
		Pattern: `can't create (?:a new thread|thread to handle (?:new connection|request|bootstrap|\w+))(?:\s*\(errno[=:]?\s*(?P<errno>\d+)\))?`,
	},
	{
		ID: "SshdForkFailed", Family: "sshd", Class: ClassProcess, Strength: Corroborate,
		Anchors: []string{"fork of unprivileged child failed"},
		Pattern: `fork of unprivileged child failed`,
	},
	{
		ID: "CronForkFailed", Family: "cron", Class: ClassProcess, Strength: Corroborate,
		Anchors: []string{"fork"},
		Pattern: `(?:\(cron\)|\bcrond?\[\d+\]:)[^\n]*can'?t fork`,
	},
	{
		ID: "RedisForkFailed", Family: "redis", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"in background: fork"},
		Pattern: `in background: fork:\s*(?P<errtext>[^\n]+)`,
	},
	{
		ID: "RubyForkFailed", Family: "ruby", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"fork(2)", "spawn(2)", "clone(2)"},
		Pattern: `(?P<errtext>resource temporarily unavailable|cannot allocate memory) - (?:v?fork|spawn|clone)\(2\)`,
	},
	{
		ID: "RubyThreadCreateFailed", Family: "ruby", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"can't create thread:"},
		Pattern: `can't create thread:\s*(?P<errtext>[^\n(]+)`,
	},

	// Numeric libraries: OpenBLAS (driver/others/blas_server.c), Intel and GNU OpenMP.
	{
		ID: "OpenBLASThreadCreateFailed", Family: "openblas", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"blas_thread_init: pthread_create failed"},
		Pattern: `blas_thread_init: pthread_create failed for thread (?P<threads>\d+) of (?P<limit>\d+):\s*(?P<errtext>[^\n]+)`,
	},
	{
		ID: "OpenBLASNprocLimit", Family: "openblas", Class: ClassThread, Strength: Corroborate,
		Anchors: []string{"blas_thread_init: rlimit_nproc"},
		Pattern: `blas_thread_init: rlimit_nproc (?P<threads>-?\d+) current, (?P<limit>-?\d+) max`,
	},
	{
		ID: "OpenMPThreadCreateFailed", Family: "openmp", Class: ClassThread, Strength: Corroborate, ErrnoDecides: true,
		Anchors: []string{"resources for omp thread", "omp: system error #", "libgomp: thread creation failed"},
		Pattern: `unable to allocate necessary resources for omp thread|omp: system error #(?P<errno>\d+)|libgomp: thread creation failed(?::\s*(?P<errtext>[^\n]+))?`,
	},

	// C++ libraries.
	{
		ID: "BoostThreadResourceError", Family: "cxx", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"thread_resource_error"},
		Pattern: `thread_resource_error`,
	},
	{
		ID: "CxxSystemErrorEAGAIN", Family: "cxx", Class: ClassThread, Strength: Corroborate,
		Anchors: []string{"what():"},
		Pattern: `what\(\):\s+resource temporarily unavailable`,
	},
	{
		ID: "QtThreadCreateFailed", Family: "qt", Class: ClassThread, Strength: Definitive, ErrnoDecides: true,
		Anchors: []string{"qthread::start"},
		Pattern: `qthread::start: thread creation error(?::\s*(?P<errtext>[^\n]+))?`,
	},
	{
		ID: "DotnetThreadStartFailed", Family: "dotnet", Class: ClassThread, Strength: Corroborate, ErrnoDecides: true,
		Anchors: []string{"thread failed to start", "threadstartexception"},
		Pattern: `thread failed to start|threadstartexception`,
	},

	// Privilege changes and exec refused by RLIMIT_NPROC: setuid(2) and
	// execve(2) return EAGAIN when the new real UID is over its limit.
	{
		ID: "SetuidProcessLimit", Family: "rlimit", Class: ClassProcess, Strength: Definitive,
		Anchors: eagainAnchors,
		Pattern: `\b(?:set(?:res|re)?uid|setuser|set user id)\b[^\n]{0,40}?:\s*` + eagainText,
	},
	{
		ID: "ExecProcessLimit", Family: "rlimit", Class: ClassProcess, Strength: Definitive,
		Anchors: eagainAnchors,
		Pattern: `\b(?:execve?|` + failVerb + ` execute)\b[^\n:]{0,120}?:\s*` + eagainText,
		Reject:  ioContext,
	},

	// make(1) runs recipes with posix_spawn or vfork.
	{
		ID: "MakeSpawnFailed", Family: "make", Class: ClassProcess, Strength: Definitive,
		Anchors: eagainAnchors,
		Pattern: `\bg?make(?:\[\d+\])?:\s+(?:\*\*\*\s+)?(?:[^:\n]{1,200}:\s*)?` + eagainText,
		Reject:  `jobs? pipe|jobserver|fifo`,
	},

	// Generic phrasing, for programs the catalog does not name. A non-PID
	// errno in the line rejects these (ErrnoDecides).
	{
		ID: "ForkResourceUnavailable", Family: "libc", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true, Generic: true,
		Anchors: []string{"fork", "clone", "posix_spawn"},
		Pattern: `\b(?:v?fork|clone3?|posix_spawnp?|forkpty|_?fork_exec|os\.fork)(?:\(\d?\))?(?:\s+(?:call\s+)?(?:failed|error))?(?:\s+with)?\s*[:=,-]?\s*(?:\(\d+\)\s*)?(?P<errtext>` + createErrText + `)` +
			`|(?P<errtext>` + createErrText + `)\s+(?:in|from|during|calling)\s+(?:v?fork|clone3?|posix_spawnp?)\b`,
		Reject: `\bgit clone\b|cloning into|clone (?:of |the )?(?:repo|repository)`,
	},
	{
		ID: "ForkFailed", Family: "libc", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true, Generic: true,
		Anchors: []string{"fork", "clone", "posix_spawn"},
		Pattern: failVerb + `\s+(?:v?fork|clone|posix_spawnp?)\b|\b(?:v?fork|clone3?|posix_spawnp?)(?:\(\d?\))?\s+(?:call\s+)?(?:failed|failure|error)\b|\bforking (?:failed|error)\b` +
			`|\bfork(?:ing)?\s+(?:of\s+)?(?:a\s+|the\s+|new\s+)?(?:child|process|worker|subprocess|helper)(?:\s+process)?\s+(?:failed|failure|error)\b`,
		Reject: `fork(?:ing)?\s+(?:of\s+|from\s+)?(?:the\s+|a\s+|this\s+|your\s+)?(?:upstream\s+|original\s+)?(?:repo|repository|project|branch)|\bgit clone\b|cloning into|clone\s+(?:of\s+|the\s+)?(?:repo|repository|volume|disk|vm|image|snapshot|pvc)`,
	},
	{
		ID: "ThreadCreateFailed", Family: "libc", Class: ClassThread, Strength: Definitive, ErrnoDecides: true, Generic: true,
		Anchors: append([]string{"thread", "out of resources", "out of system resources"}, eagainAnchors...),
		Pattern: `\b(?:pthread_create|thrd_create|createthread|_beginthreadex|std::thread|clone\(clone_vm)\b(?:\(\))?[^\n]{0,80}?(?:\bfail|\berror|\bunable|\bcannot|\bcan't|\beagain|resource temporarily unavailable|cannot allocate memory|\berrno|\breturned \d+)` +
			`|` + failVerb + `\s+(?:create|start|spawn|launch|allocate|make|initialize|init)\s+(?:(?:a|an|the|new|native|os|kernel|worker|more|additional|background|helper|service|entry|\w+)\s+){0,3}threads?\b` +
			`|\bthreads?\s+(?:creation|create|start|startup|spawn(?:ing)?)\s*(?:has\s+)?(?:failed|failure|error)` +
			`|\b(?:creating|spawning|starting)\s+(?:a\s+|new\s+|\w+\s+)?thread\s*(?:failed|:\s*` + createErrText + `)` +
			`|\b(?:create|start|spawn|launch)\s+(?:(?:a|an|the|new|native|os|worker|background|\w+)\s+){0,3}threads?\s+(?:failed|failure|error)\b` +
			`|` + failVerb + `\s+(?:create|start|spawn|launch)\s+(?:a\s+|an\s+|new\s+)?workers?\b[^\n]{0,40}?(?:out of (?:system )?resources|` + eagainText + `)` +
			`|\b(?:error|failure|failed)\b[^\n]{0,40}?\bpthread_create\b` +
			`|(?P<errtext>` + createErrText + `)\s+(?:in|from|during|calling)\s+(?:pthread_create|thrd_create|clone\(clone_vm|thread creation)\b`,
		Reject: `thread[-_ ](?:safe|local|dump|specific)|\bjoin(?:ing)?\b[^\n]{0,20}thread|already started|at interpreter shutdown`,
	},
	{
		ID: "ProcessCreateFailed", Family: "libc", Class: ClassProcess, Strength: Definitive, ErrnoDecides: true, Generic: true,
		Anchors: eagainAnchors,
		Pattern: `(?:` + failVerb + `|\berror)\s+(?:start|run|launch|spawn|create|execute|exec|fork off)\b[^\n]{0,120}?(?P<errtext>` + eagainText + `)`,
		Reject:  ioContext + `|thread`,
	},
}

// Builtin returns a copy of the built-in catalog, in priority order.
func Builtin() []Rule {
	out := make([]Rule, len(builtin))
	for i, r := range builtin {
		r.Anchors = append([]string(nil), r.Anchors...)
		out[i] = r
	}
	return out
}
