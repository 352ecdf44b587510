package record

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
)

const (
	extWebM = ".webm"
	extMKV  = ".mkv"

	videoTrack = 1
	audioTrack = 2
	// cuesReserve is the room kept after the header for the seek index
	// (one cue per cluster, a cluster at most 32 s: about 20 B per 32 s, so
	// 12 hours fit); ebml-go thins the cues out if they do not fit. With it
	// ebml-go also writes the Duration at close, which a file written live
	// would otherwise lack.
	cuesReserve = 32 << 10
	// audioFrame is one Opus packet's duration.
	audioFrame = 20 * time.Millisecond
)

// opusSilence is a 20 ms CELT frame of silence (the TOC byte says
// fullband, 20 ms, stereo; the payload sets the silence flag): what fills
// the audio track where the tab sent no sound (silence is not sent), so that
// a player keeps the sound in step with the picture over a gap.
var opusSilence = []byte{0xfc, 0xff, 0xfe}

// opusHead is the Opus identification header (RFC 7845 §5.1) Matroska
// takes as CodecPrivate: version 1, 2 channels, no pre-skip, 48 kHz, no
// gain, channel mapping family 0.
var opusHead = []byte{'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 2, 0, 0, 0x80, 0xbb, 0, 0, 0, 0, 0}

// sink is the file under the muxer: buffered, and it keeps the first
// write error and swallows it, writing nothing more. ebml-go panics or
// stops its goroutine on an error; a full disk must cost the recording, not
// the tab.
type sink struct {
	f   *os.File
	w   *bufio.Writer
	n   int64
	err error
}

func newSink(f *os.File) *sink { return &sink{f: f, w: bufio.NewWriterSize(f, 256<<10)} }

func (s *sink) Write(b []byte) (int, error) {
	if s.err == nil {
		n, err := s.w.Write(b)
		s.n += int64(n)
		if err != nil {
			s.err = fmt.Errorf("write recording: %w", err)
		}
	}
	return len(b), nil
}

// WriteAt is for the cues and the duration, written at close.
func (s *sink) WriteAt(b []byte, off int64) (int, error) {
	if s.err == nil {
		if err := s.w.Flush(); err != nil {
			s.err = fmt.Errorf("write recording: %w", err)
		} else if _, err := s.f.WriteAt(b, off); err != nil {
			s.err = fmt.Errorf("write recording: %w", err)
		}
	}
	return len(b), nil
}

// Close flushes, syncs and closes the file, keeping the first error.
func (s *sink) Close() error {
	if s.err == nil {
		if err := s.w.Flush(); err != nil {
			s.err = fmt.Errorf("write recording: %w", err)
		} else if err := s.f.Sync(); err != nil {
			s.err = fmt.Errorf("sync recording: %w", err)
		}
	}
	if err := s.f.Close(); err != nil && s.err == nil {
		s.err = fmt.Errorf("close recording: %w", err)
	}
	return nil
}

// muxer is ebml-go's block writer over a sink, with the tracks of one
// recording.
type muxer struct {
	sink   *sink
	tracks []mkvcore.BlockWriteCloser // video, then audio if any
	h264   bool
}

// errNoParameterSets: an H.264 keyframe without SPS and PPS, which the
// Matroska track needs before the first frame.
var errNoParameterSets = errors.New("h264 keyframe without SPS and PPS")

// newMuxer writes the header of a recording whose first frame is key (a
// keyframe of codec at width×height), started at start.
func newMuxer(f *os.File, codec string, width, height int, key []byte, audio bool, start time.Time) (*muxer, error) {
	m := &muxer{sink: newSink(f)}
	video := webm.TrackEntry{
		Name: "Video", TrackNumber: videoTrack, TrackUID: rand.Uint64(), TrackType: 1,
		Video: &webm.Video{PixelWidth: uint64(width), PixelHeight: uint64(height)},
	}
	header := *webm.DefaultEBMLHeader
	switch codec {
	case codecVP8:
		video.CodecID = "V_VP8"
	case codecH264:
		priv, err := avcConfig(key)
		if err != nil {
			return nil, err
		}
		video.CodecID, video.CodecPrivate = "V_MPEG4/ISO/AVC", priv
		header.DocType = "matroska" // WebM has no H.264
		m.h264 = true
	default:
		return nil, fmt.Errorf("record: codec %q: want vp8 or h264", codec)
	}
	tracks := []webm.TrackEntry{video}
	if audio {
		tracks = append(tracks, webm.TrackEntry{
			Name: "Audio", TrackNumber: audioTrack, TrackUID: rand.Uint64(), TrackType: 2,
			CodecID: "A_OPUS", CodecPrivate: opusHead, SeekPreRoll: uint64(80 * time.Millisecond),
			Audio: &webm.Audio{SamplingFrequency: 48000, Channels: 2},
		})
	}
	info := &webm.Info{TimecodeScale: uint64(time.Millisecond), MuxingApp: "Glovebox", WritingApp: "Glovebox",
		DateUTC: start.UTC()}
	ws, err := webm.NewSimpleBlockWriter(m.sink, tracks,
		mkvcore.WithEBMLHeader(&header),
		mkvcore.WithSegmentInfo(info),
		mkvcore.WithSeekHead(true),
		mkvcore.WithCues(cuesReserve),
		// The writer orders the blocks itself (recording.go); ebml-go's
		// sorter would drop late audio.
		mkvcore.WithBlockInterceptor(nil),
		mkvcore.WithOnFatalHandler(func(err error) {
			if m.sink.err == nil {
				m.sink.err = fmt.Errorf("mux recording: %w", err)
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("start recording: %w", err)
	}
	for _, w := range ws {
		m.tracks = append(m.tracks, w)
	}
	return m, nil
}

// write writes one block at ts since the start.
func (m *muxer) write(track int, ts time.Duration, key bool, b []byte) {
	if track == videoTrack && m.h264 {
		b = toAVCC(b)
	}
	_, _ = m.tracks[track-1].Write(key, ts.Milliseconds(), b)
}

// close writes the cues and the duration and closes the file; it returns
// the first error of the whole recording and the bytes written.
func (m *muxer) close() (int64, error) {
	for _, w := range m.tracks {
		_ = w.Close() // the last one waits for ebml-go to finish the file
	}
	return m.sink.n, m.sink.err
}

// nalUnits splits an Annex B stream (what openh264 writes) into its NAL
// units, start codes removed.
func nalUnits(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				out = append(out, bytes.TrimRight(b[start:i], "\x00"))
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

// toAVCC is an Annex B frame as Matroska stores H.264: each NAL unit
// after its 4-byte length.
func toAVCC(b []byte) []byte {
	var out []byte
	for _, n := range nalUnits(b) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(n)))
		out = append(out, n...)
	}
	return out
}

// avcConfig is the AVCDecoderConfigurationRecord (ISO 14496-15) of the
// SPS and PPS in a keyframe: the H.264 track's CodecPrivate.
func avcConfig(key []byte) ([]byte, error) {
	var sps, pps []byte
	for _, n := range nalUnits(key) {
		switch {
		case len(n) == 0:
		case n[0]&0x1f == 7 && sps == nil:
			sps = n
		case n[0]&0x1f == 8 && pps == nil:
			pps = n
		}
	}
	if len(sps) < 4 || pps == nil {
		return nil, errNoParameterSets
	}
	out := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1}
	out = binary.BigEndian.AppendUint16(out, uint16(len(sps)))
	out = append(out, sps...)
	out = append(out, 1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(pps)))
	return append(out, pps...), nil
}
