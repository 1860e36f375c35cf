package vmm

import "io"

// EscapeReader passes console input through, except the escape Ctrl-A (as QEMU's
// -nographic): Ctrl-A x calls Stop and ends the input; Ctrl-A Ctrl-A sends one Ctrl-A;
// Ctrl-A and anything else sends that key. Use it as Config.ConsoleIn on a raw terminal.
type EscapeReader struct {
	R       io.Reader
	Stop    func()
	pending bool // the last byte was Ctrl-A
	stopped bool
}

// EscapeKey is Ctrl-A, the console escape.
const EscapeKey = 0x01

func (e *EscapeReader) Read(p []byte) (int, error) {
	if e.stopped {
		return 0, io.EOF
	}
	n, err := e.R.Read(p)
	out := p[:0] // filtered in place: never longer than what was read
	for _, c := range p[:n] {
		switch {
		case e.pending && c == 'x':
			e.stopped = true
			e.Stop()
			return len(out), io.EOF
		case e.pending:
			e.pending = false
			out = append(out, c)
		case c == EscapeKey:
			e.pending = true
		default:
			out = append(out, c)
		}
	}
	return len(out), err
}
