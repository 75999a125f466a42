// Command node-problem-detector is Node Problem Detector with the
// pid-pressure monitor built in. It takes upstream NPD's flags and runs its
// own monitors too, so a DaemonSet can swap the image and add
// --config.pid-pressure-monitor=/config/pid-pressure-monitor.json.
//
// NPD's pluggable exporters (Stackdriver) are left out: they bring the
// cloud SDKs. The Kubernetes and Prometheus exporters are here.
package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
	_ "k8s.io/node-problem-detector/cmd/nodeproblemdetector/problemdaemonplugins" // NPD's own monitors
	"k8s.io/node-problem-detector/cmd/options"
	"k8s.io/node-problem-detector/pkg/exporters/prometheusexporter"
	"k8s.io/node-problem-detector/pkg/problemdaemon"
	"k8s.io/node-problem-detector/pkg/problemdetector"
	"k8s.io/node-problem-detector/pkg/types"
	"k8s.io/node-problem-detector/pkg/version"

	"github.com/pidpressure/pidpressure/plugin/npd"
)

func main() {
	// Before the options: the --config.pid-pressure-monitor flag comes
	// from the problem daemon registry.
	var metricsAddress string
	npd.Register(&metricsAddress)

	// klog's flags as upstream NPD exposes them.
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("legacy_stderr_threshold_behavior", "false")
	_ = klogFlags.Set("stderrthreshold", "INFO")
	klogFlags.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "v", "vmodule", "logtostderr":
			flag.CommandLine.Var(f.Value, f.Name, f.Usage)
		}
	})
	pflag.CommandLine.AddGoFlagSet(flag.CommandLine)
	_ = pflag.CommandLine.MarkHidden("vmodule")
	_ = pflag.CommandLine.MarkHidden("logtostderr")

	npdo := options.NewNodeProblemDetectorOptions()
	if err := npdo.AddFlags(pflag.CommandLine); err != nil {
		klog.Fatalf("Failed to add flags: %v", err)
	}
	pflag.StringVar(&metricsAddress, "metrics-address", "",
		"Serve the pid-pressure monitor's own Prometheus metrics (/metrics) and /healthz on this host:port; overrides the monitor file's metricsAddress.")
	pflag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, npdo); err != nil {
		klog.Fatalf("Problem detector failed with error: %v", err)
	}
}

func run(ctx context.Context, npdo *options.NodeProblemDetectorOptions) error {
	if npdo.PrintVersion {
		version.PrintVersion()
		return nil
	}
	npdo.SetNodeNameOrDie()
	npdo.SetConfigFromDeprecatedOptionsOrDie()
	npdo.ValidOrDie()

	daemons := problemdaemon.NewProblemDaemons(npdo.MonitorConfigPaths)
	if len(daemons) == 0 {
		return errors.New("no problem daemon is configured (for this agent: --config.pid-pressure-monitor=FILE)")
	}
	var exporters []types.Exporter
	if e := newConditionExporter(ctx, npdo); e != nil {
		if ne, err := newNodeEvents(ctx, e, npdo); err != nil {
			klog.ErrorS(err, "Events keep NPD's Node reference without a UID (kubectl describe node will not list them)")
		} else {
			e = ne
		}
		exporters = append(exporters, e)
		klog.Info("K8s exporter started.")
	}
	if e := prometheusexporter.NewExporterOrDie(npdo); e != nil {
		exporters = append(exporters, e)
		klog.Info("Prometheus exporter started.")
	}
	if len(exporters) == 0 {
		return errors.New("no exporter is set up")
	}
	return problemdetector.NewProblemDetector(daemons, exporters).Run(ctx)
}
