package rng_test

import (
	"bytes"
	"testing"

	"github.com/hullvm/hull/virtio/rng"
	"github.com/hullvm/hull/virtio/virtiotest"
)

// counter is an entropy source that yields 0, 1, 2, ... so fills are checkable.
type counter struct{ n byte }

func (c *counter) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

func TestFill(t *testing.T) {
	tests := []struct {
		name string
		out  [][]byte
		in   []uint32
		want uint32
	}{
		{"one buffer", nil, []uint32{64}, 64},
		{"several buffers", nil, []uint32{3, 5, 8}, 16},
		{"readable part ignored", [][]byte{{1, 2, 3}}, []uint32{16}, 16},
		{"capped", nil, []uint32{rng.MaxRequest, 4096}, rng.MaxRequest},
		{"nothing to fill", [][]byte{{1}}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := virtiotest.Start(t, rng.New(&counter{}), ^uint64(0))
			q := d.Queues[0]
			_, ws, err := q.Add(tt.out, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			q.Kick()
			u := q.Wait(t, d.IRQ)
			if u.Len != tt.want {
				t.Fatalf("filled %d bytes, want %d", u.Len, tt.want)
			}
			want := make([]byte, tt.want)
			(&counter{}).Read(want)
			if got := q.Read(ws, u.Len); !bytes.Equal(got, want) {
				t.Fatal("buffers do not hold the source's bytes in order")
			}
		})
	}
}
