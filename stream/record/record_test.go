package record

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/stream/internal/h264"
	"github.com/glovebox/glovebox/stream/internal/i420"
	"github.com/glovebox/glovebox/stream/internal/opus"
	"github.com/glovebox/glovebox/stream/internal/vpx"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// encoder makes real frames of a solid colour that changes each frame.
type encoder interface {
	Encode(img *i420.Image, pts int64, duration uint64, forceKey bool) ([]byte, bool, error)
	Close()
}

// feed encodes n frames of 320x240, one every step from t0, the first a
// keyframe, and gives them to r as a peer would; it returns the frames r
// took (after its first keyframe).
func feed(t *testing.T, r *Recording, codec string, n int, t0 time.Time, step time.Duration) int {
	t.Helper()
	var enc encoder
	var err error
	if codec == codecH264 {
		enc, err = h264.NewEncoder(h264.EncoderConfig{Width: 320, Height: 240, BitrateKbps: 500})
	} else {
		enc, err = vpx.NewEncoder(vpx.EncoderConfig{Width: 320, Height: 240, BitrateKbps: 500, CPUUsed: -6})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var img i420.Image
	img.Reset(320, 240)
	for i := range n {
		img.Fill(byte(40+i*10%200), 128, byte(100+i*7%100))
		at := t0.Add(time.Duration(i) * step)
		frame, key, err := enc.Encode(&img, at.Sub(t0).Nanoseconds()*90000/int64(time.Second), uint64(step*90000/time.Second), i == 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := r.RecordVideo(codec, 320, 240, frame, at, key); want {
			t.Fatalf("frame %d (key %v): the recording asks for a keyframe", i, key)
		}
	}
	return n
}

func ffprobeFile(t *testing.T, path string) (duration float64, codec string, frames int) {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		testenv.Missing(t, "ffprobe not installed (apt install ffmpeg)")
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "format=duration:stream=codec_name,nb_read_frames", "-of", "json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	var raw struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			Name   string `json:"codec_name"`
			Frames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &raw); err != nil || len(raw.Streams) != 1 {
		t.Fatalf("ffprobe output %v: %s", err, out)
	}
	duration, _ = strconv.ParseFloat(raw.Format.Duration, 64)
	frames, _ = strconv.Atoi(raw.Streams[0].Frames)
	return duration, raw.Streams[0].Name, frames
}

// TestH264Matroska: H.264 goes into a Matroska file (WebM has no H.264)
// that ffprobe decodes whole, with its duration.
func TestH264Matroska(t *testing.T) {
	s := NewStore(Config{Dir: t.TempDir()}, quietLog())
	r := s.Start("tab-h264", false)
	n := feed(t, r, codecH264, 50, time.Now(), 40*time.Millisecond)
	res := r.Close()
	if res.Err != nil || !strings.HasSuffix(res.Path, ".mkv") || res.Frames != int64(n) {
		t.Fatalf("recording %+v, want %d frames in a .mkv", res, n)
	}
	d, codec, frames := ffprobeFile(t, res.Path)
	if codec != "h264" || frames != n || d < 1.96-0.1 || d > 1.96+0.1 {
		t.Errorf("ffprobe: %s, %d frames, %.3f s; want h264, %d frames, 1.96 s", codec, frames, d, n)
	}
}

// TestStartsWithKeyframe: frames before the first keyframe are dropped and
// each asks for a keyframe; nothing is written for a tab that never sent
// one.
func TestStartsWithKeyframe(t *testing.T) {
	s := NewStore(Config{Dir: t.TempDir()}, quietLog())
	r := s.Start("tab", true)
	if !r.RecordVideo(codecVP8, 320, 240, []byte{1, 2, 3}, time.Now(), false) {
		t.Error("a P-frame before any keyframe did not ask for a keyframe")
	}
	r.RecordAudio([]byte{1}, time.Now()) // before the first frame: dropped
	res := r.Close()
	if res.Path != "" || res.Err != nil || res.Frames != 0 {
		t.Errorf("recording with no keyframe: %+v, want nothing", res)
	}
	if entries, _ := os.ReadDir(s.cfg.Dir); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}

// TestOpusSilence: the packet that fills the audio track's gaps decodes to
// 20 ms of stereo silence.
func TestOpusSilence(t *testing.T) {
	dec, err := opus.NewDecoder(2)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	pcm := make([]int16, 2*5760)
	n, err := dec.Decode(opusSilence, pcm)
	if err != nil || n != 960 {
		t.Fatalf("decode: %d samples, %v; want 960", n, err)
	}
	for i, v := range pcm[:2*n] {
		if v != 0 {
			t.Fatalf("sample %d is %d, want silence", i, v)
		}
	}
}

// makeFile writes a recording-named file of size bytes, last modified age
// ago.
func makeFile(t *testing.T, dir, name string, size int, age time.Duration) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, make([]byte, size), 0o640); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-age)
	if err := os.Chtimes(p, at, at); err != nil {
		t.Fatal(err)
	}
	return p
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestRetention: past max_total_mb the oldest recordings go first, those
// older than max_age go whatever the total, files Glovebox did not name stay,
// and retention runs at Prepare and when a recording closes.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	const mb = 1 << 20
	oldest := makeFile(t, dir, "glovebox-a-tab-1.webm", mb/2, 3*time.Hour)
	older := makeFile(t, dir, "glovebox-b-tab-2.mkv", mb/2, 2*time.Hour)
	newer := makeFile(t, dir, "glovebox-c-tab-3.webm", mb/2, time.Hour)
	foreign := makeFile(t, dir, "notes.webm", 4*mb, 10*time.Hour)
	s := NewStore(Config{Dir: dir, MaxTotalMB: 1, MaxAge: 24 * time.Hour}, quietLog())
	if err := s.Prepare(); err != nil {
		t.Fatal(err)
	}
	if exists(oldest) || !exists(older) || !exists(newer) || !exists(foreign) {
		t.Errorf("after Prepare over 1 MiB: oldest %v older %v newer %v foreign %v; want only the oldest gone",
			exists(oldest), exists(older), exists(newer), exists(foreign))
	}

	// A recording that closes takes the total past the limit again: the
	// oldest of the others goes, the new one stays.
	r := s.Start("tab4", false)
	feed(t, r, codecVP8, 10, time.Now(), 100*time.Millisecond)
	pad := makeFile(t, dir, "glovebox-d-tab-5.webm", mb/4, 30*time.Minute)
	res := r.Close()
	if res.Err != nil || !exists(res.Path) {
		t.Fatalf("recording: %+v", res)
	}
	if exists(older) || !exists(newer) || !exists(pad) {
		t.Errorf("after a recording closed: older %v newer %v pad %v; want the older gone", exists(older), exists(newer), exists(pad))
	}

	// Age: older than max_age goes even under the size limit.
	s.cfg.MaxAge = 45 * time.Minute
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if exists(newer) || !exists(pad) || !exists(res.Path) || !exists(foreign) {
		t.Errorf("after max_age 45m: newer %v pad %v new %v foreign %v; want the hour-old one gone",
			exists(newer), exists(pad), exists(res.Path), exists(foreign))
	}
}

// TestRetentionSparesOpen: a recording being written is never removed,
// even when it alone is over the limit.
func TestRetentionSparesOpen(t *testing.T) {
	dir := t.TempDir()
	s := NewStore(Config{Dir: dir, MaxTotalMB: 1}, quietLog())
	r := s.Start("tab", false)
	feed(t, r, codecVP8, 3, time.Now(), 100*time.Millisecond)
	big := makeFile(t, dir, "glovebox-z-tab-9.webm", 2<<20, time.Minute)
	// Wait for the file to exist (the writer opens it at the first frame).
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.open)
		s.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the recording never opened its file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if exists(big) {
		t.Error("the finished 2 MiB file stayed over a 1 MiB limit")
	}
	res := r.Close()
	if !exists(res.Path) {
		t.Error("the recording being written was removed")
	}
}

// TestUnwritableDir: a directory that cannot be made fails the recording,
// saying why, and the frames given to it are taken without blocking.
func TestUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewStore(Config{Dir: filepath.Join(file, "rec")}, quietLog())
	if err := s.Prepare(); err == nil {
		t.Error("Prepare of a directory under a file: no error")
	}
	r := s.Start("tab", true)
	feed(t, r, codecVP8, 30, time.Now(), 30*time.Millisecond)
	res := r.Close()
	if res.Err == nil || res.Path != "" {
		t.Errorf("recording in an unwritable directory: %+v, want an error and no file", res)
	}
}

// TestDiskFull: a disk that fills up fails the recording (ENOSPC, from
// /dev/full) without failing or blocking whoever gives it frames.
func TestDiskFull(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		testenv.Missing(t, "no /dev/full: %v", err)
	}
	full.Close()
	s := NewStore(Config{Dir: t.TempDir()}, quietLog())
	s.openFile = func(string, int, os.FileMode) (*os.File, error) { return os.OpenFile("/dev/full", os.O_WRONLY, 0) }
	r := s.Start("tab", false)
	feed(t, r, codecVP8, 100, time.Now(), 30*time.Millisecond)
	res := r.Close()
	if !errors.Is(res.Err, syscall.ENOSPC) {
		t.Errorf("recording on a full disk: %+v, want ENOSPC", res)
	}
}

// BenchmarkRecordVideo is the cost on the encoder goroutine of one frame
// handed to a recording (a copy and a queue), and, in the background, of
// writing it: ns/frame with b.N frames of 30 kB (a busy 720p page's
// P-frame) at 30 fps, and the bytes written per frame.
func BenchmarkRecordVideo(b *testing.B) {
	s := NewStore(Config{Dir: b.TempDir()}, quietLog())
	r := s.Start("bench", true)
	frame := make([]byte, 30<<10)
	frame[0] = 0x10 // a VP8 keyframe's first byte: never parsed here
	t0 := time.Now()
	var onPath time.Duration
	b.ResetTimer()
	for i := range b.N {
		at := t0.Add(time.Duration(i) * time.Second / 30)
		start := time.Now()
		r.RecordVideo(codecVP8, 1280, 720, frame, at, i == 0)
		onPath += time.Since(start)
		if i%50 == 0 {
			for len(r.q) > queueLen/2 {
				time.Sleep(time.Millisecond) // the disk's pace, not the encoder's
			}
		}
	}
	res := r.Close()
	b.StopTimer()
	if res.Err != nil || res.Dropped != 0 {
		b.Fatalf("recording: %+v", res)
	}
	b.ReportMetric(float64(onPath.Nanoseconds())/float64(b.N), "ns-on-encoder/frame")
	b.ReportMetric(float64(res.Bytes)/float64(b.N), "bytes/frame")
}
