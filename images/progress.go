package images

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Progress receives the progress of long steps: downloads and layer conversions.
type Progress interface {
	// Start begins a task of total bytes (0 when unknown).
	Start(name string, total int64) Task
}

// Task is one step in progress: written bytes advance it, Done ends it.
type Task interface {
	io.Writer
	Add(n int64)
	Done(err error)
}

type nopProgress struct{}

func (nopProgress) Start(string, int64) Task { return nopTask{} }

type nopTask struct{}

func (nopTask) Write(p []byte) (int, error) { return len(p), nil }
func (nopTask) Add(int64)                   {}
func (nopTask) Done(error)                  {}

// NewProgress reports to w: bars when w is a terminal (tty), else one line when a task
// starts and one when it ends. Wait must be called when the operation is over.
func NewProgress(w io.Writer, tty bool) *Reporter {
	r := &Reporter{w: w}
	if tty {
		r.bars = mpb.New(mpb.WithOutput(w), mpb.WithAutoRefresh(), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
	}
	return r
}

// Reporter is the Progress the CLI uses.
type Reporter struct {
	w    io.Writer
	bars *mpb.Progress
	mu   sync.Mutex // serializes plain lines
}

// Start implements Progress.
func (r *Reporter) Start(name string, total int64) Task {
	if r.bars != nil {
		b := r.bars.AddBar(total,
			mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Counters(decor.SizeB1024(0), "% .1f / % .1f")),
			mpb.BarRemoveOnComplete(),
		)
		return &barTask{b: b, total: total}
	}
	r.line("%s: started (%s)", name, humanBytes(total))
	return &lineTask{r: r, name: name}
}

// Wait waits for the bars to finish drawing.
func (r *Reporter) Wait() {
	if r.bars != nil {
		r.bars.Wait()
	}
}

func (r *Reporter) line(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, format+"\n", args...)
}

type barTask struct {
	b     *mpb.Bar
	total int64
	n     int64
}

func (t *barTask) Write(p []byte) (int, error) {
	t.n += int64(len(p))
	t.b.IncrBy(len(p))
	return len(p), nil
}

func (t *barTask) Add(n int64) {
	t.n += n
	t.b.IncrInt64(n)
}

func (t *barTask) Done(err error) {
	if err != nil {
		t.b.Abort(false)
		return
	}
	t.b.SetTotal(t.n, true)
}

type lineTask struct {
	r    *Reporter
	name string
	n    int64
}

func (t *lineTask) Write(p []byte) (int, error) { t.n += int64(len(p)); return len(p), nil }

func (t *lineTask) Add(n int64) { t.n += n }

func (t *lineTask) Done(err error) {
	if err != nil {
		t.r.line("%s: failed", t.name)
		return
	}
	t.r.line("%s: done (%s)", t.name, humanBytes(t.n))
}

// humanBytes formats a byte count the way docker images does (decimal units).
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f, u := float64(n), ""
	for _, x := range []string{"kB", "MB", "GB", "TB"} {
		f /= unit
		u = x
		if f < unit {
			break
		}
	}
	return fmt.Sprintf("%.3g%s", f, u)
}
