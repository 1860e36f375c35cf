package images

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	r := NewProgress(&buf, false)
	a := r.Start("layer aaa", 3000)
	a.Write(make([]byte, 1000))
	a.Add(2000)
	a.Done(nil)
	b := r.Start("convert bbb", 10)
	b.Done(errors.New("boom"))
	r.Wait()
	want := "layer aaa: started (3kB)\nlayer aaa: done (3kB)\nconvert bbb: started (10B)\nconvert bbb: failed\n"
	if buf.String() != want {
		t.Errorf("progress lines:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestProgressBars(t *testing.T) {
	var buf bytes.Buffer
	r := NewProgress(&buf, true)
	a := r.Start("layer aaa", 2048)
	a.Write(make([]byte, 2048))
	a.Done(nil)
	r.Wait()
	if !strings.Contains(buf.String(), "layer aaa") || !strings.Contains(buf.String(), "2.0 KiB / 2.0 KiB") {
		t.Errorf("bar output %q lacks the task's name and final count", buf.String())
	}
}
