# pidpressure — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
CACHE     ?= $(HOME)/.cache/pidpressure
BIN       := $(CURDIR)/bin
LINT_VERSION := v2.15.0
LINT      := $(CACHE)/bin/golangci-lint-$(LINT_VERSION)
FUZZTIME  ?= 15s
export CGO_ENABLED ?= 1

## help: list the targets
.PHONY: help
help:
	@awk '/^## /{sub(/^## /,""); n=index($$0,": "); printf "  %-12s %s\n", substr($$0,1,n-1), substr($$0,n+2)}' $(MAKEFILE_LIST)

# The version stamped into both commands: git describe of the checkout, or a
# fixed string when there is no git (a source archive). The NPD build reports
# it through NPD's own version variable (--version).
BUILD_VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.0.0-nogit)
BUILD_LDFLAGS := -X main.version=$(BUILD_VERSION) -X k8s.io/node-problem-detector/pkg/version.version=$(BUILD_VERSION)

## build: build the commands into ./bin (cgo on, for the journal), stamped with the version (git describe)
.PHONY: build
build:
	$(GO) build -ldflags "$(BUILD_LDFLAGS)" -o $(BIN)/ ./cmd/...

## run: the detector in the foreground on this machine (pidpressure watch: the PIDPressureRisk condition and Events as they happen; Ctrl-C stops)
.PHONY: run
run: build
	@mkdir -p $(CACHE)/state
	$(BIN)/pidpressure watch --state-dir $(CACHE)/state

## test: every test — unit and live-host with the race detector, then end to end against a real kube-apiserver (builds the control plane once, cached)
.PHONY: test
test: controlplane tools tracefs
	PIDPRESSURE_REQUIRE_SUPPORTED=$(REQUIRE_SUPPORTED) $(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory test-e2e

## test-e2e: the end-to-end tests alone (internal/e2e, its own module: real etcd, kube-apiserver, kubectl, journald, PID namespaces and cgroups; a systemd node VM under QEMU (make node-image); the deploy manifests rendered by helm and kustomize, applied, and RBAC and admission proven; the alerts unit-tested with promtool; needs root)
.PHONY: test-e2e
# -p 1: the node VM runs under TCG, which a concurrent host fork storm of
# the other package slows to a crawl.
test-e2e: controlplane controllers tools node-image node-bins tracefs
	cd internal/e2e && KUBEBUILDER_ASSETS=$(CP_DIR) CONTROLLERS_BIN=$(CTRL_DIR) HELM=$(HELM) KUSTOMIZE=$(KUSTOMIZE) PROMTOOL=$(PROMTOOL) PROMETHEUS=$(PROMETHEUS) KSM=$(KSM) NODEVM_IMAGE=$(NODEVM_DIR) NODEVM_BINS=$(NODEBIN_DIR) PIDPRESSURE_REQUIRE_SUPPORTED=$(REQUIRE_SUPPORTED) $(GO) test -p 1 -count=1 -timeout 45m -v ./...

## demo: the incident end to end for a newcomer: a real kube-apiserver, a Node, the agent, a PID namespace exhausted for real, kubectl describe node; exits 1 if the condition did not appear (needs root)
.PHONY: demo
demo: controlplane
	cd internal/e2e && KUBEBUILDER_ASSETS=$(CP_DIR) $(GO) run ./demo

## demo-node: the incident on a real node for a newcomer: the node VM (systemd, cgroup v2, containerd, kubelet) joins a real control plane, the agent runs as its DaemonSet's pod, pid_max is lowered inside the VM until the kubelet dies of newosproc and shells fail; prints kubectl describe node and the node's own failure lines, exits 1 if PIDPressureRisk did not turn True PIDExhausted (about 5 minutes warm; needs root)
.PHONY: demo-node
demo-node: controlplane controllers node-image node-bins
	cd internal/e2e && KUBEBUILDER_ASSETS=$(CP_DIR) CONTROLLERS_BIN=$(CTRL_DIR) NODEVM_IMAGE=$(NODEVM_DIR) NODEVM_BINS=$(NODEBIN_DIR) PIDPRESSURE_REQUIRE_SUPPORTED=1 $(GO) test -count=1 -timeout 30m -run 'TestNode$$/^(Join|Incident)$$' -v .

## capture-hosts: capture the cgroup v2 trees of testdata/hosts from the real node (cgroupv2-node-vm-*: a pod at its podPidsLimit, containerd.service at its TasksMax, zombies; the kernel's own pids files; about 7 minutes warm; needs root)
.PHONY: capture-hosts
capture-hosts: controlplane controllers node-image node-bins
	cd internal/e2e && KUBEBUILDER_ASSETS=$(CP_DIR) CONTROLLERS_BIN=$(CTRL_DIR) NODEVM_IMAGE=$(NODEVM_DIR) NODEVM_BINS=$(NODEBIN_DIR) PIDPRESSURE_REQUIRE_SUPPORTED=1 PIDPRESSURE_CAPTURE_HOSTS=$(CURDIR)/testdata/hosts $(GO) test -count=1 -timeout 30m -run 'TestNode$$/^(Join|PodAtItsLimit|UnitAtItsTasksMax|Zombies)$$' -v .

## test-short: the quick loop: unit tests only (-short skips live-host tests)
.PHONY: test-short
test-short:
	$(GO) test -short -count=1 ./...

## bench: the benchmarks with their baselines, one package at a time so that none disturbs another (docs/benchmarks.md); ThreadScaling adds 20,000 threads for a few seconds, MatchedLineScaling and Storm 5,000 sleeping processes, Storm a 30 s failure storm through a journald of its own, Cost what the eBPF counter costs forks and system calls (as root)
.PHONY: bench
bench:
	$(GO) test -p 1 -run '^$$' -bench 'Matcher$$|NPDBaseline|RegexpList|NodeSample|Walk' -benchmem -count 1 ./internal/signature/ ./internal/headroom/
	$(GO) test -p 1 -run '^$$' -bench 'Ratios|ThreadScaling|JournalIngest|IdleFootprint|MatchedLineScaling|Storm|Cost' -benchtime 1x -count 1 ./internal/signature/ ./internal/headroom/ ./internal/journal/ ./cmd/pidpressure/ ./internal/agent/ ./internal/forkfail/

## bench-e2e: failure-to-condition latency through a real kube-apiserver, this agent (E2E_RUNS each) against NPD's exec-based custom plugin (E2E_EXEC_RUNS each, up to 105 s a run); idle resident memory, this agent against upstream NPD (docs/benchmarks.md; about 25 minutes; needs root)
.PHONY: bench-e2e
bench-e2e: controlplane tools
	cd internal/e2e && KUBEBUILDER_ASSETS=$(CP_DIR) $(GO) test -run '^$$' -bench 'FailureToCondition/in-process' -benchtime $(E2E_RUNS)x -timeout 60m -v .
	cd internal/e2e && KUBEBUILDER_ASSETS=$(CP_DIR) $(GO) test -run '^$$' -bench 'FailureToCondition/exec-plugin' -benchtime $(E2E_EXEC_RUNS)x -timeout 60m -v .
	cd internal/e2e && KUBEBUILDER_ASSETS=$(CP_DIR) HELM=$(HELM) KUSTOMIZE=$(KUSTOMIZE) $(GO) test -run '^$$' -bench 'IdleMemory' -benchtime 1x -timeout 10m -v .

E2E_RUNS      ?= 20
E2E_EXEC_RUNS ?= 3

## eval: recall and precision of the matcher per runtime family on the public corpus (testdata/corpus/public), and on the fifth of its sources held back from tuning
.PHONY: eval
eval:
	$(GO) test -count=1 -run 'TestPublicCorpus|TestHeldOut' -v ./internal/signature/ | grep -v '^=== '

# As root, a live test fails rather than skips when this host does not
# support what it needs (the journal, /dev/kmsg, the eBPF counter): here all
# are supported, and a skip would hide a regression. REQUIRE_SUPPORTED= lets
# them skip.
REQUIRE_SUPPORTED ?= $(if $(filter 0,$(shell id -u)),1,)

## tracefs: mount tracefs at /sys/kernel/tracing if it is not (the eBPF counter's tracepoints need it; as root)
.PHONY: tracefs
tracefs:
	@if [ "$$(id -u)" = 0 ] && [ ! -e /sys/kernel/tracing/events ]; then mount -t tracefs tracefs /sys/kernel/tracing && echo "mounted tracefs at /sys/kernel/tracing"; fi

## generate: recompile the eBPF fork-failure counter (internal/forkfail/bpf) into the committed objects (needs clang, llvm and libbpf-dev)
.PHONY: generate
generate:
	$(GO) generate ./internal/forkfail/

## generate-check: fail if the committed eBPF objects differ from what make generate makes
.PHONY: generate-check
generate-check: generate
	git diff --exit-code -- internal/forkfail

## fuzz: run each fuzz target for FUZZTIME (default 15s)
.PHONY: fuzz
fuzz:
	@set -e; for spec in \
	  internal/signature:FuzzMatch internal/kmsg:FuzzParseRecord \
	  internal/journal:FuzzExportReader internal/journal:FuzzJSONReader \
	  internal/replay:FuzzReplay internal/logline:FuzzSanitize internal/headroom:FuzzParseCgroupFile; do \
	  pkg=$${spec%%:*}; fn=$${spec##*:}; \
	  echo "== $$pkg $$fn"; $(GO) test ./$$pkg -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME); \
	done

$(LINT):
	@mkdir -p $(CACHE)/bin
	GOBIN=$(CACHE)/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(LINT_VERSION)
	mv $(CACHE)/bin/golangci-lint $@

# helm and kustomize for the deploy checks, built from the module proxy.
HELM_VERSION      := v3.22.0
KUSTOMIZE_VERSION := v5.8.2
HELM      := $(CACHE)/bin/helm-$(HELM_VERSION)
KUSTOMIZE := $(CACHE)/bin/kustomize-$(KUSTOMIZE_VERSION)

$(HELM):
	@mkdir -p $(CACHE)/bin
	flock $(CACHE)/bin/.helm.lock sh -c 'test -x $@ || { GOBIN=$(CACHE)/bin/.helm $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION) && mv $(CACHE)/bin/.helm/helm $@; }'

$(KUSTOMIZE):
	@mkdir -p $(CACHE)/bin
	flock $(CACHE)/bin/.kustomize.lock sh -c 'test -x $@ || { GOBIN=$(CACHE)/bin/.kustomize $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION) && mv $(CACHE)/bin/.kustomize/kustomize $@; }'

# promtool for the alerts' unit tests (promtool test rules), built from the
# module proxy (Prometheus v3.16.0's Go module is v0.316.0).
PROMTOOL_VERSION := v0.316.0
PROMTOOL  := $(CACHE)/bin/promtool-$(PROMTOOL_VERSION)

$(PROMTOOL):
	@mkdir -p $(CACHE)/bin
	flock $(CACHE)/bin/.promtool.lock sh -c 'test -x $@ || { GOBIN=$(CACHE)/bin/.promtool $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION) && mv $(CACHE)/bin/.promtool/promtool $@; }'

# Prometheus itself, of the same release, and kube-state-metrics: the fleet
# test (internal/e2e/fleet_test.go) scrapes the agents and the Nodes with
# them, fires the shipped alerts and evaluates the dashboard's queries.
PROMETHEUS := $(CACHE)/bin/prometheus-$(PROMTOOL_VERSION)
KSM_VERSION := v2.20.0
KSM       := $(CACHE)/bin/kube-state-metrics-$(KSM_VERSION)

$(PROMETHEUS):
	@mkdir -p $(CACHE)/bin
	flock $(CACHE)/bin/.prometheus.lock sh -c 'test -x $@ || { GOBIN=$(CACHE)/bin/.prometheus $(GO) install github.com/prometheus/prometheus/cmd/prometheus@$(PROMTOOL_VERSION) && mv $(CACHE)/bin/.prometheus/prometheus $@; }'

$(KSM):
	@mkdir -p $(CACHE)/bin
	flock $(CACHE)/bin/.ksm.lock sh -c 'test -x $@ || { GOBIN=$(CACHE)/bin/.ksm $(GO) install k8s.io/kube-state-metrics/v2@$(KSM_VERSION) && mv $(CACHE)/bin/.ksm/kube-state-metrics $@; }'

## tools: build (once, cached) helm, kustomize, promtool, Prometheus and kube-state-metrics for the deploy checks and the fleet test
.PHONY: tools
tools: $(HELM) $(KUSTOMIZE) $(PROMTOOL) $(PROMETHEUS) $(KSM)

## lint: golangci-lint (built from the module proxy and cached under ~/.cache/pidpressure)
.PHONY: lint
lint: $(LINT)
	$(LINT) run ./...
	cd internal/e2e && $(LINT) run ./...

## fmt: gofmt and goimports with the project's local prefix
.PHONY: fmt
fmt: $(LINT)
	$(LINT) fmt ./...

## update: rewrite golden files and the generated signature table (docs/signatures.md)
.PHONY: update
update:
	$(GO) test ./internal/replay/ ./cmd/pidpressure/ ./plugin/npd/ -run Golden -update
	$(GO) test ./internal/signature/ -run Doc -update

## hosts: rewrite the fake host trees under testdata/hosts from their generator
.PHONY: hosts
hosts:
	python3 testdata/hosts/generate.py

## verify: update goldens and fake hosts, tidy modules and format, then fail if anything changed (or appeared)
.PHONY: verify
verify: update hosts fmt
	$(GO) mod tidy
	cd internal/e2e && $(GO) mod tidy
	git diff --exit-code
	@test -z "$$(git status --porcelain)" || { git status --porcelain; echo "verify: files appeared"; exit 1; }

## vet-arm64: vet for linux/arm64 (cgo off) so nothing amd64-only slips in
.PHONY: vet-arm64
vet-arm64:
	CGO_ENABLED=0 GOARCH=arm64 $(GO) vet ./...

# The control plane for the end-to-end harness, built from the module proxy
# (see hack/controlplane/README.md) and cached by version and go.sum.
K8S_VERSION  := v1.37.2
ETCD_VERSION := v3.6.16
CP_HASH      := $(shell cat hack/controlplane/kubernetes/go.sum hack/controlplane/etcd/go.sum | sha256sum | cut -c1-12)
CP_DIR       := $(CACHE)/controlplane/k8s-$(K8S_VERSION)-etcd-$(ETCD_VERSION)-$(CP_HASH)
K8S_LDFLAGS  := -s -w -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 \
	-X k8s.io/component-base/version.gitTreeState=clean

## controlplane: build (once, cached) kube-apiserver, kubectl and etcd for the end-to-end harness; prints their directory
.PHONY: controlplane
controlplane: $(CP_DIR)/kube-apiserver $(CP_DIR)/kubectl $(CP_DIR)/etcd
	@echo $(CP_DIR)

# One build at a time: parallel test packages or a second make wait on the
# lock, then find the binary there and skip the build.
$(CP_DIR)/kube-apiserver $(CP_DIR)/kubectl:
	@mkdir -p $(CP_DIR)
	flock $(CP_DIR)/.lock sh -c 'test -x $@ || { cd hack/controlplane/kubernetes && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(K8S_LDFLAGS)" -o $@.tmp k8s.io/kubernetes/cmd/$(notdir $@) && mv $@.tmp $@; }'

$(CP_DIR)/etcd:
	@mkdir -p $(CP_DIR)
	flock $(CP_DIR)/.lock sh -c 'test -x $@ || { cd hack/controlplane/etcd && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $@.tmp go.etcd.io/etcd/server/v3 && mv $@.tmp $@; }'

# The controllers the real-node tests run beside kube-apiserver, from their
# own wrapper module (hack/controlplane/controllers): kube-controller-manager
# (the DaemonSet controller, the kube-root-ca.crt publisher) and
# kube-scheduler (which binds the DaemonSet's pods). Cached by version and
# go.sum, apart from the control plane so that neither rebuilds the other.
CTRL_HASH := $(shell { cat hack/controlplane/controllers/go.sum; echo '$(K8S_LDFLAGS)'; } | sha256sum | cut -c1-12)
CTRL_DIR  := $(CACHE)/controllers/k8s-$(K8S_VERSION)-$(CTRL_HASH)

## controllers: build (once, cached) kube-controller-manager and kube-scheduler for the real-node tests; prints their directory
.PHONY: controllers
controllers: $(CTRL_DIR)/kube-controller-manager $(CTRL_DIR)/kube-scheduler
	@echo $(CTRL_DIR)

$(CTRL_DIR)/kube-controller-manager $(CTRL_DIR)/kube-scheduler:
	@mkdir -p $(CTRL_DIR)
	flock $(CTRL_DIR)/.lock sh -c 'test -x $@ || { cd hack/controlplane/controllers && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(K8S_LDFLAGS)" -o $@.tmp k8s.io/kubernetes/cmd/$(notdir $@) && mv $@.tmp $@; }'

# The node's own binaries for the real-node VM, built from the module proxy
# (hack/node): containerd 2.x with its runc shim and ctr (Kubernetes 1.36+
# requires containerd 2; Debian ships 1.7), and the kubelet. Cached by
# version and go.sum.
CONTAINERD_VERSION := v2.4.2
CONTAINERD_LDFLAGS := -s -w -X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD_VERSION) -X github.com/containerd/containerd/v2/version.Revision=module-proxy
NODEBIN_HASH := $(shell { cat hack/node/kubelet/go.sum hack/node/containerd/go.sum; echo '$(K8S_LDFLAGS) $(CONTAINERD_LDFLAGS)'; } | sha256sum | cut -c1-12)
NODEBIN_DIR  := $(CACHE)/nodebin/k8s-$(K8S_VERSION)-containerd-$(CONTAINERD_VERSION)-$(NODEBIN_HASH)

## node-bins: build (once, cached) containerd 2.x, its runc shim, ctr and the kubelet for the node VM; prints their directory
.PHONY: node-bins
node-bins: $(NODEBIN_DIR)/kubelet $(NODEBIN_DIR)/containerd
	@echo $(NODEBIN_DIR)

$(NODEBIN_DIR)/kubelet:
	@mkdir -p $(NODEBIN_DIR)
	flock $(NODEBIN_DIR)/.lock sh -c 'test -x $@ || { cd hack/node/kubelet && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(K8S_LDFLAGS)" -o $@.tmp k8s.io/kubernetes/cmd/kubelet && mv $@.tmp $@; }'

$(NODEBIN_DIR)/containerd:
	@mkdir -p $(NODEBIN_DIR)
	flock $(NODEBIN_DIR)/.lock sh -c 'test -x $@ || { cd hack/node/containerd && CGO_ENABLED=0 $(GO) build -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "$(CONTAINERD_LDFLAGS)" -o $(NODEBIN_DIR)/.tmp/ github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/ctr && mv $(NODEBIN_DIR)/.tmp/* $(NODEBIN_DIR)/ && rmdir $(NODEBIN_DIR)/.tmp; }'

# The node VM for the real-node tests (hack/nodevm/README.md): a Debian
# trixie image built from apt by mmdebstrap, cached by the hash of its recipe.
NODEVM_TOOLS := qemu-system-x86 qemu-utils mmdebstrap e2fsprogs socat
NODEVM_HASH  := $(shell cat hack/nodevm/build.sh hack/nodevm/guest/* | sha256sum | cut -c1-12)
NODEVM_DIR   := $(CACHE)/nodevm/$(NODEVM_HASH)

## nodevm-tools: install QEMU and mmdebstrap with apt when they are missing (needs root)
.PHONY: nodevm-tools
nodevm-tools:
	@missing=$$(for p in $(NODEVM_TOOLS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "nodevm: installing" $$missing >&2; \
	  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >&2; \
	fi

## node-image: build (once, cached) the node VM image (Debian trixie, kernel 6.12, systemd, cgroup v2) for the real-node tests; prints its directory (needs root)
.PHONY: node-image
node-image: $(NODEVM_DIR)/node.img
	@echo $(NODEVM_DIR)

# One build at a time: a second make waits on the lock, then finds the image.
$(NODEVM_DIR)/node.img: | nodevm-tools
	@mkdir -p $(NODEVM_DIR)
	flock $(NODEVM_DIR)/.lock sh -c 'test -f $@ || hack/nodevm/build.sh $(NODEVM_DIR)' >&2

VERSION ?= 0.1.0
IMAGE   ?= pidpressure/node-problem-detector:$(VERSION)
IMAGE_LDFLAGS := -s -w -X k8s.io/node-problem-detector/pkg/version.version=pidpressure-$(VERSION)+npd-v1.36.0 -X main.version=$(VERSION)

## image-layout: lay out the image's files under DEST (the Dockerfile's build step; no container engine needed)
.PHONY: image-layout
image-layout:
	@test -n "$(DEST)" || { echo "make image-layout DEST=dir" >&2; exit 2; }
	mkdir -p $(DEST)/config $(DEST)/usr/local/bin
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags "$(IMAGE_LDFLAGS)" -o $(DEST)/node-problem-detector ./cmd/node-problem-detector
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags "$(IMAGE_LDFLAGS)" -o $(DEST)/usr/local/bin/pidpressure ./cmd/pidpressure
	cp config/pid-pressure-monitor.json config/pid-pressure-plugin.json $(DEST)/config/

## image: build the container image IMAGE with docker or podman (needs a container engine)
.PHONY: image
image:
	@engine=$$(command -v docker || command -v podman) || { echo "make image: no docker or podman here; make image-layout DEST=dir lays out the same files" >&2; exit 1; }; \
	$$engine build -t $(IMAGE) .

## clean: remove ./bin
.PHONY: clean
clean:
	rm -rf $(BIN)
