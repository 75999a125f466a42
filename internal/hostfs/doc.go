// Package hostfs reads the host's /proc and /sys through a root path, so that
// a DaemonSet can read the host's files mounted under /host and tests can
// point at fake trees. It is the only package that opens host files.
//
// Pseudo-files are read whole with a size cap and without stat: the sizes
// that /proc and /sys report are not the sizes of their contents.
package hostfs
