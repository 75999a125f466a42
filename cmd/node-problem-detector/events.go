package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apitypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/node-problem-detector/cmd/options"
	"k8s.io/node-problem-detector/pkg/types"
	"k8s.io/node-problem-detector/pkg/util"
)

// nodeEvents wraps NPD's Kubernetes exporter: conditions go through it
// (its condition manager, heartbeats and retries), while every monitor's
// Events are recorded here about the Node with the Node's UID.
//
// NPD v1.36.0 records Events about a Node reference without a UID, and
// `kubectl describe node` lists only Events whose involvedObject.uid is the
// Node's UID (or its name, as kubelet writes it): NPD's Events never show
// there (found by the end-to-end test; upstream issue
// kubernetes/node-problem-detector#1324). The recorder is client-go's, as
// NPD's is, one per source, and messages keep NPD's meaning (a format
// string), so only the reference changes.
type nodeEvents struct {
	types.Exporter // NPD's k8s exporter
	events         typedcorev1.CoreV1Interface
	node           string
	broadcaster    record.EventBroadcaster

	mu        sync.Mutex
	uid       apitypes.UID
	recorders map[string]record.EventRecorder
}

// newNodeEvents wraps k8s. It fails if the apiserver address cannot be
// turned into a client (the caller then keeps NPD's own Events).
func newNodeEvents(ctx context.Context, k8s types.Exporter, npdo *options.NodeProblemDetectorOptions) (*nodeEvents, error) {
	cfg, err := clientConfig(npdo.ApiServerOverride)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = npdo.QPS, npdo.Burst
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	n := &nodeEvents{
		Exporter:    k8s,
		events:      cs.CoreV1(),
		node:        npdo.NodeName,
		broadcaster: record.NewBroadcaster(record.WithContext(ctx)),
		recorders:   map[string]record.EventRecorder{},
	}
	n.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: n.events.Events(npdo.EventNamespace)})
	go n.learnUID(ctx)
	return n, nil
}

// learnUID reads the Node's UID, retrying until it can (the apiserver may
// be away, or the Node not registered yet). Events recorded before then
// carry no UID, as NPD's do.
func (n *nodeEvents) learnUID(ctx context.Context) {
	_ = wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		node, err := n.events.Nodes().Get(ctx, n.node, metav1.GetOptions{ResourceVersion: "0"})
		if err != nil {
			klog.V(2).InfoS("node UID for events not known yet", "node", n.node, "err", err)
			return false, nil
		}
		n.mu.Lock()
		n.uid = node.UID
		n.mu.Unlock()
		return true, nil
	})
}

// ExportProblems records status's Events and hands its conditions to NPD.
func (n *nodeEvents) ExportProblems(status *types.Status) {
	if len(status.Events) > 0 {
		n.mu.Lock()
		rec, ok := n.recorders[status.Source]
		if !ok {
			rec = n.broadcaster.NewRecorder(nil, corev1.EventSource{Component: status.Source, Host: n.node})
			n.recorders[status.Source] = rec
		}
		ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: n.node, UID: n.uid}
		n.mu.Unlock()
		for _, e := range status.Events {
			rec.Eventf(ref, util.ConvertToAPIEventType(e.Severity), e.Reason, e.Message)
		}
		conditionsOnly := *status
		conditionsOnly.Events = nil
		status = &conditionsOnly
	}
	n.Exporter.ExportProblems(status)
}

// clientConfig turns NPD's --apiserver-override into a client config the
// way NPD does for the parameters this agent documents: inClusterConfig
// (default true), auth (a kubeconfig, when inClusterConfig=false) and
// insecure.
func clientConfig(override string) (*rest.Config, error) {
	uri, err := url.Parse(override)
	if err != nil {
		return nil, err
	}
	q := uri.Query()
	boolParam := func(name string, def bool) (bool, error) {
		if v := q.Get(name); v != "" {
			return strconv.ParseBool(v)
		}
		return def, nil
	}
	inCluster, err := boolParam("inClusterConfig", true)
	if err != nil {
		return nil, fmt.Errorf("--apiserver-override inClusterConfig: %w", err)
	}
	insecure, err := boolParam("insecure", false)
	if err != nil {
		return nil, fmt.Errorf("--apiserver-override insecure: %w", err)
	}
	server := ""
	if uri.Scheme != "" && uri.Host != "" {
		server = uri.Scheme + "://" + uri.Host
	}
	var cfg *rest.Config
	switch {
	case inCluster:
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, err
		}
		if server != "" {
			cfg.Host = server
		}
	case q.Get("auth") != "":
		if cfg, err = clientcmd.BuildConfigFromFlags("", q.Get("auth")); err != nil {
			return nil, err
		}
	default:
		cfg = &rest.Config{Host: server}
	}
	if insecure {
		cfg.Insecure, cfg.CAFile, cfg.CAData = true, "", nil
	}
	if cfg.Host == "" {
		return nil, fmt.Errorf("--apiserver-override %q names no apiserver", override)
	}
	return cfg, nil
}
