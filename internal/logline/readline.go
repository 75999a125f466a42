package logline

import (
	"bufio"
	"errors"
	"io"
)

// ErrTooLong is ReadLine's error for a line over its limit.
var ErrTooLong = errors.New("line too long")

// ReadLine reads one '\n'-terminated line without the newline. A line over
// max bytes is consumed whole and reported as ErrTooLong. At the end of input
// it returns the last unterminated line, then io.EOF.
func ReadLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > max+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, ErrTooLong
			}
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if tooLong {
				return nil, ErrTooLong
			}
			if len(buf) == 0 {
				return nil, io.EOF
			}
			return buf, nil
		default:
			return nil, err
		}
	}
}
