package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pidpressure/pidpressure/internal/replay"
	"github.com/pidpressure/pidpressure/internal/signature"
)

func newReplayCmd() *cobra.Command {
	var (
		output    string
		format    string
		all       bool
		maxRecord int
	)
	cmd := &cobra.Command{
		Use:   "replay [flags] FILE|-",
		Short: "Run the signature matcher over saved logs",
		Long: `replay reads saved logs and prints the records that report a failure to create
a process or thread, with the signature, its family and class (process or
thread), its strength and how far the record's origin can be trusted.

Formats: lines (plain text, one record per line), journal-json (journalctl -o
json), journal-export (journalctl -o export), kmsg (cat /dev/kmsg).

With -o jsonl each printed record is one JSON object with at least "line" (the
1-based record number) and "match"; matches add "signature", "family",
"class", "strength", "trust" and "fields". With --all every record is printed,
in input order. A malformed record is printed with "error" and counted as
skipped; it never stops the run. A summary goes to standard error.`,
		Example: `  pidpressure replay /var/log/syslog
  journalctl -o json --since -1h | pidpressure replay --format journal-json -o jsonl -
  pidpressure replay --all -o jsonl --format kmsg kmsg.txt`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := replay.ParseFormat(format)
			if err != nil {
				return usageError{err}
			}
			out := replay.Output(output)
			if out != replay.OutputText && out != replay.OutputJSONL {
				return usageError{fmt.Errorf("unknown output %q: want text or jsonl", output)}
			}
			if maxRecord <= 0 {
				return usageError{errors.New("--max-record-bytes must be positive")}
			}
			in := cmd.InOrStdin()
			if args[0] != "-" {
				file, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer func() { _ = file.Close() }() // read-only: a close error loses nothing
				in = file
			}
			m, err := signature.NewDefault()
			if err != nil {
				return err
			}
			d, err := replay.NewDecoder(cmd.Context(), f, in, maxRecord, time.Time{})
			if err != nil {
				return err
			}
			s, err := replay.Run(cmd.Context(), m, d, cmd.OutOrStdout(), replay.Options{Output: out, All: all})
			printSummary(cmd.ErrOrStderr(), s)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", string(replay.OutputText), "output form: text or jsonl")
	cmd.Flags().StringVar(&format, "format", string(replay.FormatLines), "input format: lines, journal-json, journal-export or kmsg")
	cmd.Flags().BoolVar(&all, "all", false, "print every record, not only matches")
	cmd.Flags().IntVar(&maxRecord, "max-record-bytes", replay.DefaultMaxRecord, "skip (and count) records longer than this")
	return cmd
}

func printSummary(w io.Writer, s replay.Summary) {
	_, _ = fmt.Fprintf(w, "replay: %d records, %d matches (%d definitive), %d skipped\n", s.Records, s.Matches, s.Definitive, s.Skipped)
}
