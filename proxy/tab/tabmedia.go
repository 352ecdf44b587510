package tab

import "github.com/glovebox/glovebox/proxy/audit"

// MediaMetrics returns a collector (see Metrics.Collector) of the media
// of each open tab that tabs returns (Server.TabMedia), labelled by tab id
// and user, as in the audit events: one set of series per open tab, gone
// when the tab ends. The counters sum the tab's peers as tab_end does; the
// link's gauges and its packets lost are the attached peer's, left out while
// none is (the tab waits for its landing page to come back). RTT is left out
// until a receiver report has measured it.
func MediaMetrics(tabs func() []Media) func(emit audit.Emit) {
	return func(emit audit.Emit) {
		for _, t := range tabs() {
			l := []string{"tab", t.Tab, "user", t.User}
			s := t.Stats
			emit("glovebox_tab_info", "Open tabs with media; codec is the attached peer's (\"\" while none is).", "gauge", 1, append(l, "codec", s.Codec)...)
			emit("glovebox_tab_frames_in_total", "Screencast frames handed to the tab's encoder.", "counter", float64(s.FramesIn), l...)
			emit("glovebox_tab_frames_sent_total", "Video frames sent to the tab's viewer.", "counter", float64(s.FramesSent), l...)
			emit("glovebox_tab_frames_skipped_total", "Video frames of the tab skipped to fit the link.", "counter", float64(s.FramesSkipped), l...)
			emit("glovebox_tab_keyframes_total", "Keyframes sent to the tab's viewer.", "counter", float64(s.Keyframes), l...)
			emit("glovebox_tab_media_bytes_total", "Video payload bytes sent to the tab's viewer.", "counter", float64(s.BytesSent), l...)
			emit("glovebox_tab_encode_seconds_total", "Time spent encoding the tab's video.", "counter", s.EncodeTime.Seconds(), l...)
			emit("glovebox_tab_audio_packets_total", "Audio packets sent to the tab's viewer (none while the page is silent).", "counter", float64(s.AudioPackets), l...)
			emit("glovebox_tab_audio_bytes_total", "Audio payload bytes sent to the tab's viewer.", "counter", float64(s.AudioBytes), l...)
			if !t.Attached {
				continue
			}
			emit("glovebox_tab_target_bitrate_bps", "Congestion control's target bitrate for the tab's video, bits/s.", "gauge", float64(s.TargetBitrate), l...)
			emit("glovebox_tab_packet_loss_ratio", "Fraction of the tab's video packets lost, from the viewer's last receiver report.", "gauge", s.FractionLost, l...)
			emit("glovebox_tab_packets_lost_total", "Video packets lost, from the viewer's last receiver report; restarts at 0 with a new peer.", "counter", float64(s.PacketsLost), l...)
			if s.RTT > 0 {
				emit("glovebox_tab_rtt_seconds", "Round-trip time to the tab's viewer, from its last receiver report.", "gauge", s.RTT.Seconds(), l...)
			}
			if s.Width > 0 && s.Height > 0 {
				emit("glovebox_tab_frame_width_pixels", "Width of the tab's last video frame.", "gauge", float64(s.Width), l...)
				emit("glovebox_tab_frame_height_pixels", "Height of the tab's last video frame.", "gauge", float64(s.Height), l...)
			}
		}
	}
}
