package record

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	codecVP8  = "vp8"  // stream.CodecVP8
	codecH264 = "h264" // stream.CodecH264

	// queueLen and queueBytes bound what waits for the writer: a few
	// seconds of video and sound, or 32 MiB. Past either, what comes is
	// dropped (and the video waits for its next keyframe).
	queueLen   = 512
	queueBytes = 32 << 20
	// reorder is how long a block waits for blocks of the other track
	// stamped before it: the sound and the picture come on their own paths
	// and a little out of step, and a file's blocks go in time order.
	reorder = 300 * time.Millisecond
)

// ErrDropped says frames were dropped because the disk did not keep up:
// the recording has holes (each up to the next keyframe).
var ErrDropped = errors.New("recording: frames dropped, the writer fell behind")

// Result is what became of a recording.
type Result struct {
	// Path is the file; "" when nothing was recorded (no frame was ever
	// sent) or the file could not be created.
	Path string
	// Err says why the recording failed or is incomplete (the file, if
	// any, holds what was written before).
	Err error
	// Frames and AudioPackets are the blocks written (silence filling
	// the audio track's gaps included in AudioPackets).
	Frames, AudioPackets int64
	// Dropped counts the frames and packets dropped on a full queue.
	Dropped int64
	// Duration is the time from the first frame to the last block.
	Duration time.Duration
	// Bytes is the file's size.
	Bytes int64
}

// item is a frame or packet on its way to the writer.
type item struct {
	video         bool
	codec         string
	width, height int
	key           bool
	data          []byte
	at            time.Time
}

// Recording is one tab's recording: it satisfies stream.Recorder (its
// methods never block) and writes from a goroutine of its own. Close it
// when the tab ends.
type Recording struct {
	store *Store
	log   *slog.Logger
	tab   string
	audio bool

	mu      sync.Mutex // the producers' side: peers' encoder goroutines and the sound reader
	closed  bool
	started bool   // the first keyframe is queued
	codec   string // the first keyframe's
	needKey bool   // after a drop: video waits for a keyframe
	dropped int64
	other   int64 // frames of another codec than the file's, dropped

	q      chan item
	queued atomic.Int64 // bytes in q
	done   chan struct{}
	res    Result
}

func newRecording(s *Store, tab string, audio bool) *Recording {
	r := &Recording{store: s, log: s.log.With("tab", tab), tab: tab, audio: audio,
		q: make(chan item, queueLen), done: make(chan struct{})}
	go r.run()
	return r
}

// RecordVideo queues a copy of frame; see stream.Recorder.
func (r *Recording) RecordVideo(codec string, width, height int, frame []byte, captured time.Time, key bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return false
	case !r.started || r.needKey:
		if !key {
			return true
		}
	}
	if r.started && codec != r.codec {
		// One file, one codec: a landing page that took another codec
		// than the first (an odd browser) is not recorded.
		if r.other++; r.other == 1 {
			r.log.Warn("recording: a peer sends another codec than the recording's; its frames are left out", "codec", codec, "recording_codec", r.codec)
		}
		return false
	}
	if !r.push(item{video: true, codec: codec, width: width, height: height, key: key, data: frame, at: captured}) {
		r.needKey = true
		return true
	}
	r.started, r.needKey = true, false
	if r.codec == "" {
		r.codec = codec
	}
	return false
}

// RecordAudio queues a copy of packet; see stream.Recorder.
func (r *Recording) RecordAudio(packet []byte, captured time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || !r.started || !r.audio {
		return
	}
	r.push(item{data: packet, at: captured})
}

// push queues a copy of it, or drops it (counted, logged now and then) if
// the queue is full. r.mu is held.
func (r *Recording) push(it item) bool {
	if len(r.q) == cap(r.q) || r.queued.Load()+int64(len(it.data)) > queueBytes {
		if r.dropped++; r.dropped == 1 || r.dropped%100 == 0 {
			r.log.Error("recording falls behind: frames dropped", "dropped", r.dropped)
		}
		return false
	}
	it.data = slices.Clone(it.data) // the encoder reuses its buffer
	r.queued.Add(int64(len(it.data)))
	r.q <- it // never blocks: only producers send, under r.mu, and there is room
	return true
}

// Close finishes the file (its duration and seek index), applies the
// store's retention and says what became of the recording. It waits for
// the queue to be written; the producers' calls after it are ignored.
func (r *Recording) Close() Result {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.q)
	}
	r.mu.Unlock()
	<-r.done
	res := r.res
	r.mu.Lock()
	res.Dropped = r.dropped
	r.mu.Unlock()
	if res.Err == nil && res.Dropped > 0 {
		res.Err = ErrDropped
	}
	return res
}

// block is a frame or packet placed on the recording's time line.
type block struct {
	track int
	ts    time.Duration // since the first keyframe
	key   bool
	data  []byte
}

// writer is the state of the goroutine that writes the file.
type writer struct {
	r       *Recording
	mux     *muxer
	t0      time.Time
	pending []block // in time order, waiting reorder for earlier ones
	newest  time.Duration
	lastV   time.Duration // the last video block's time
	anyV    bool
	nextA   time.Duration // where the next audio packet goes: the audio track has no gap
	lastTS  time.Duration
	failed  bool
}

func (r *Recording) run() {
	defer close(r.done)
	w := &writer{r: r}
	for it := range r.q {
		r.queued.Add(-int64(len(it.data)))
		if w.failed {
			continue
		}
		if w.mux == nil {
			w.open(it)
			if w.mux == nil {
				continue
			}
		}
		w.add(it)
	}
	w.finish()
}

// open creates the file at the first frame, a keyframe, which gives the
// codec and size.
func (w *writer) open(first item) {
	r := w.r
	ext := extWebM
	if first.codec == codecH264 {
		ext = extMKV
	}
	f, err := r.store.create(r.tab, first.at, ext)
	if err != nil {
		w.fail(err, "")
		return
	}
	mux, err := newMuxer(f, first.codec, first.width, first.height, first.data, r.audio, first.at)
	if err != nil {
		f.Close()
		w.fail(err, f.Name())
		r.store.closed(f.Name())
		return
	}
	w.mux, w.t0 = mux, first.at
	r.res.Path = f.Name()
	r.log.Info("recording started", "file", f.Name(), "codec", first.codec, "audio", r.audio)
}

func (w *writer) fail(err error, path string) {
	w.failed = true
	w.r.res.Err, w.r.res.Path = err, path
	w.r.log.Error("recording failed: the tab goes on unrecorded", "err", err)
}

// add puts it on the time line and writes what can no longer be preceded.
func (w *writer) add(it item) {
	ts := it.at.Sub(w.t0)
	b := block{ts: ts, key: true, data: it.data}
	if it.video {
		b.track, b.key = videoTrack, it.key
		if w.anyV && b.ts <= w.lastV {
			b.ts = w.lastV + time.Millisecond // a file's frames go forward
		}
		w.lastV, w.anyV = b.ts, true
	} else {
		if ts < -reorder {
			return // sound from before the first frame
		}
		b.track = audioTrack
	}
	i, _ := slices.BinarySearchFunc(w.pending, b.ts, func(p block, ts time.Duration) int {
		if p.ts <= ts {
			return -1 // after equal times: in arrival order
		}
		return 1
	})
	w.pending = slices.Insert(w.pending, i, b)
	w.newest = max(w.newest, b.ts)
	w.flush(w.newest - reorder)
}

// flush writes the pending blocks stamped up to until, in time order.
func (w *writer) flush(until time.Duration) {
	n := 0
	for ; n < len(w.pending) && w.pending[n].ts <= until; n++ {
		w.place(w.pending[n])
	}
	w.pending = slices.Delete(w.pending, 0, n)
	if err := w.mux.sink.err; err != nil && !w.failed {
		w.fail(err, w.r.res.Path)
	}
}

// place writes b. The audio track is kept whole: where no sound came it
// gets silence, and each packet goes right after the one before (within a
// packet of its own time), so that players keep sound and picture in step.
func (w *writer) place(b block) {
	if w.r.audio {
		for w.nextA+audioFrame <= b.ts {
			w.write(block{track: audioTrack, ts: w.nextA, key: true, data: opusSilence})
			w.nextA += audioFrame
		}
		if b.track == audioTrack {
			b.ts = w.nextA
			w.nextA += audioFrame
		}
	}
	w.write(b)
}

func (w *writer) write(b block) {
	w.mux.write(b.track, b.ts, b.key, b.data)
	w.lastTS = max(w.lastTS, b.ts)
	if b.track == videoTrack {
		w.r.res.Frames++
	} else {
		w.r.res.AudioPackets++
	}
}

// finish writes what is pending and closes the file.
func (w *writer) finish() {
	r := w.r
	if w.mux == nil {
		return
	}
	if !w.failed {
		w.flush(w.newest)
	}
	n, err := w.mux.close()
	r.res.Bytes, r.res.Duration = n, w.lastTS
	if err != nil && r.res.Err == nil {
		r.res.Err = err
		r.log.Error("recording failed: the tab goes on unrecorded", "err", err)
	}
	r.store.closed(r.res.Path)
	r.log.Info("recording closed", "file", r.res.Path, "frames", r.res.Frames, "bytes", n, "duration", w.lastTS, "err", r.res.Err)
}
