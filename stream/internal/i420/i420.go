// Package i420 holds the planar YUV 4:2:0 image shared by the JPEG decoder
// and the VP8 and H.264 codec bindings, so that no binding depends on another.
package i420

// Image is a planar YUV 4:2:0 image with 8-bit samples in Go memory.
//
// The planes cover the full decoded size (chroma rounded up), while Width and
// Height are the visible size cropped to even numbers, as I420 encoders need.
type Image struct {
	Width, Height     int // visible size, both even
	Y, U, V           []byte
	StrideY, StrideUV int
}

// Reset sizes m for a decode of w×h samples, reusing its buffers when they
// are large enough, and sets the visible size to w×h cropped to even numbers.
func (m *Image) Reset(w, h int) {
	cw, ch := (w+1)/2, (h+1)/2
	m.StrideY, m.StrideUV = w, cw
	m.Y = grow(m.Y, w*h)
	m.U = grow(m.U, cw*ch)
	m.V = grow(m.V, cw*ch)
	m.Width, m.Height = w&^1, h&^1
}

// Fill paints the whole image in one colour.
func (m *Image) Fill(y, u, v byte) {
	fill(m.Y, y)
	fill(m.U, u)
	fill(m.V, v)
}

// Mean returns the average Y, U and V sample over the visible area.
func (m *Image) Mean() (y, u, v float64) {
	return mean(m.Y, m.StrideY, m.Width, m.Height),
		mean(m.U, m.StrideUV, m.Width/2, m.Height/2),
		mean(m.V, m.StrideUV, m.Width/2, m.Height/2)
}

func mean(p []byte, stride, w, h int) float64 {
	if w == 0 || h == 0 {
		return 0
	}
	var sum uint64
	for row := range h {
		for _, s := range p[row*stride : row*stride+w] {
			sum += uint64(s)
		}
	}
	return float64(sum) / float64(w*h)
}

func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]byte, n)
}

func fill(b []byte, c byte) {
	for i := range b {
		b[i] = c
	}
}
