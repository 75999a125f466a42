// Package journal turns systemd journal entries into lines.
//
// It reads the two formats journalctl saves entries in — JSON
// (journalctl -o json, one object per line) and the export format
// (journalctl -o export, https://systemd.io/JOURNAL_EXPORT_FORMATS/) — and
// translates an entry's fields into a logline.Line. Attribution uses only the
// fields journald sets itself (those starting with an underscore: _PID, _UID,
// _COMM, _EXE, _SYSTEMD_UNIT, _SYSTEMD_CGROUP, _TRANSPORT, _BOOT_ID); the
// sender-controlled SYSLOG_IDENTIFIER is never used.
package journal
