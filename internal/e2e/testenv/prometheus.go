package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Daemon is a program the fleet test runs beside the agents (Prometheus,
// kube-state-metrics), logging to a file, stopped by PID.
type Daemon struct {
	Log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when it exits
}

// StartDaemon starts bin with args, its output in dir/name.log.
func StartDaemon(dir, name, bin string, args ...string) (*Daemon, error) {
	d := &Daemon{Log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(d.Log)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// StartListening starts a daemon that listens on a port of loopback given
// by args(port), and waits until url(port) answers 200. A port found free
// can be taken by another program before the daemon binds it (an ephemeral
// port of someone's connection): when the daemon exits before it is
// ready, it starts again on another port, up to three times.
func StartListening(ctx context.Context, dir, name, bin string, args func(port int) []string, url func(port int) string) (*Daemon, int, error) {
	var last error
	for range 3 {
		port, err := FreePort()
		if err != nil {
			return nil, 0, err
		}
		d, err := StartDaemon(dir, name, bin, args(port)...)
		if err != nil {
			return nil, 0, err
		}
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		last = d.waitReady(wctx, url(port))
		cancel()
		if last == nil {
			return d, port, nil
		}
		d.Stop()
		<-d.done
		last = fmt.Errorf("%s: %w\n%s", name, last, d.Tail())
	}
	return nil, 0, last
}

// waitReady polls u until it answers 200, the daemon exits, or ctx ends.
func (d *Daemon) waitReady(ctx context.Context, u string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if r, err := http.DefaultClient.Do(req); err == nil {
			_ = r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200: %w", u, ctx.Err())
		case <-d.done:
			return fmt.Errorf("it exited before %s answered", u)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills the daemon's process group.
func (d *Daemon) Stop() { _ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL) }

// Tail is the end of the daemon's log.
func (d *Daemon) Tail() string {
	b, _ := os.ReadFile(d.Log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Prometheus is a running Prometheus server on loopback.
type Prometheus struct {
	*Daemon
	URL string
}

// ScrapeJob is one job of the scrape configuration: static targets, each
// with its own labels (as a ServiceMonitor's relabelling would give them).
type ScrapeJob struct {
	Name    string
	Targets []ScrapeTarget
	// HonorLabels keeps the scraped series' own labels (kube-state-metrics'
	// node label).
	HonorLabels bool
}

// ScrapeTarget is one target address and its labels.
type ScrapeTarget struct {
	Address string
	Labels  map[string]string
}

// StartPrometheus runs Prometheus from bin with its storage in dir,
// scraping jobs and evaluating the rule groups (a rules file's groups)
// every interval, and waits until it is ready.
func StartPrometheus(ctx context.Context, bin, dir string, interval time.Duration, groups any, jobs []ScrapeJob) (*Prometheus, error) {
	rules, err := json.Marshal(map[string]any{"groups": groups}) // JSON is YAML
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
		return nil, err
	}
	var scrape []map[string]any
	for _, j := range jobs {
		var static []map[string]any
		for _, t := range j.Targets {
			static = append(static, map[string]any{"targets": []string{t.Address}, "labels": t.Labels})
		}
		scrape = append(scrape, map[string]any{"job_name": j.Name, "honor_labels": j.HonorLabels, "static_configs": static})
	}
	conf, err := json.Marshal(map[string]any{
		"global":         map[string]any{"scrape_interval": interval.String(), "evaluation_interval": interval.String(), "scrape_timeout": interval.String()},
		"rule_files":     []string{filepath.Join(dir, "rules.yaml")},
		"scrape_configs": scrape,
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), conf, 0o644); err != nil {
		return nil, err
	}
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	d, port, err := StartListening(ctx, dir, "prometheus", bin, func(port int) []string {
		return []string{"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr(port)}
	}, func(port int) string { return "http://" + addr(port) + "/-/ready" })
	if err != nil {
		return nil, err
	}
	return &Prometheus{Daemon: d, URL: "http://" + addr(port)}, nil
}

// Sample is one series of an instant vector.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates q now and returns its series.
func (p *Prometheus) Query(ctx context.Context, q string) ([]Sample, error) {
	var res struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api(ctx, "/api/v1/query?query="+url.QueryEscape(q), &res); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	if res.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: a %s, not an instant vector", q, res.ResultType)
	}
	out := make([]Sample, 0, len(res.Result))
	for _, r := range res.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", q, r.Value[1], err)
		}
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// Alert is one alert of the rules Prometheus evaluates.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
	ActiveAt    time.Time         `json:"activeAt"`
	Value       string            `json:"value"`
}

// Alerts returns the active alerts.
func (p *Prometheus) Alerts(ctx context.Context) ([]Alert, error) {
	var res struct {
		Alerts []Alert `json:"alerts"`
	}
	return res.Alerts, p.api(ctx, "/api/v1/alerts", &res)
}

// TargetsUp returns the scrape health of every active target, by its
// address.
func (p *Prometheus) TargetsUp(ctx context.Context) (map[string]string, error) {
	var res struct {
		Active []struct {
			URL    string `json:"scrapeUrl"`
			Health string `json:"health"`
			Error  string `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := p.api(ctx, "/api/v1/targets", &res); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, t := range res.Active {
		out[t.URL] = t.Health + " " + t.Error
	}
	return out, nil
}

func (p *Prometheus) api(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		return err
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = r.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("prometheus answered %d: %.200s", r.StatusCode, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("prometheus: %s", env.Error)
	}
	return json.Unmarshal(env.Data, into)
}
