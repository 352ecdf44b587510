package stream

import "time"

// Recorder receives the media a peer sends, as it is sent: the frames the
// encoder made, not a second encode. Both methods are called on the media
// paths (RecordVideo on the encoder goroutine, RecordAudio on WriteAudio's
// caller) and must not block: hand the bytes to a goroutine of your own
// through a bounded queue and drop when it is full.
type Recorder interface {
	// RecordVideo is given each video frame written to the track: its codec
	// (CodecVP8 or CodecH264), the size of the image it encodes, the frame
	// (valid only during the call: copy it), the capture time its RTP
	// timestamp stands for, and whether it is a keyframe. A frame that a
	// full queue made it drop breaks the chain of the frames after it:
	// returning true asks the encoder for a keyframe, as a browser's PLI
	// does (no sooner than keyframes are spaced). Until its first keyframe
	// a recorder should drop frames and ask for one.
	RecordVideo(codec string, width, height int, frame []byte, captured time.Time, key bool) (wantKey bool)
	// RecordAudio is given each Opus packet sent (20 ms, AudioChannels
	// channels at AudioRate) with the capture time of its first sample, on
	// the same clock as the video's. packet is valid only during the call.
	RecordAudio(packet []byte, captured time.Time)
}
