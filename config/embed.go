// Package config holds the configuration files the project ships; the
// default monitor configuration is embedded from here.
package config

import _ "embed"

// DefaultMonitor is config/pid-pressure-monitor.json.
//
//go:embed pid-pressure-monitor.json
var DefaultMonitor []byte
