package stream

import (
	"errors"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// FuzzOffer feeds arbitrary SDP to checkOffer, the check every landing
// page's offer meets before pion sees it, with each order of the codecs.
// An offer it accepts is one pion parses and has a video section we may
// send one of those codecs in. Seeds in testdata/fuzz/FuzzOffer.
func FuzzOffer(f *testing.F) {
	prefsOf := [][]string{{CodecVP8}, {CodecH264}, {CodecVP8, CodecH264}, {CodecH264, CodecVP8}}
	f.Fuzz(func(t *testing.T, offer string, prefsSel uint8) {
		prefs := prefsOf[int(prefsSel)%len(prefsOf)]
		err := checkOffer(offer, prefs)
		if err != nil {
			if !errors.Is(err, ErrBadOffer) {
				t.Fatalf("error %v does not wrap ErrBadOffer", err)
			}
			return
		}
		desc := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}
		if _, err := desc.Unmarshal(); err != nil {
			t.Fatalf("accepted an offer pion cannot parse: %v", err)
		}
		var sd sdp.SessionDescription
		if err := sd.UnmarshalString(offer); err != nil {
			t.Fatalf("accepted an offer that does not parse: %v", err)
		}
		for _, md := range sd.MediaDescriptions {
			if md.MediaName.Media == "video" && md.MediaName.Port.Value != 0 && receives(md) && offersCodec(md, prefs) {
				return
			}
		}
		t.Fatalf("accepted an offer without a video section that receives %v:\n%s", prefs, offer)
	})
}

// receives reports whether the browser will receive in section md.
func receives(md *sdp.MediaDescription) bool {
	for _, a := range md.Attributes {
		if a.Key == "sendonly" || a.Key == "inactive" {
			return false
		}
	}
	return true
}

// offersCodec reports whether md maps a payload type to a codec of prefs:
// VP8, or H.264 with packetization-mode 1.
func offersCodec(md *sdp.MediaDescription, prefs []string) bool {
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, codec, _ := strings.Cut(a.Value, " ")
		name, _, _ := strings.Cut(strings.ToLower(codec), "/")
		for _, p := range prefs {
			if name != p {
				continue
			}
			if p == CodecVP8 {
				return true
			}
			for _, b := range md.Attributes {
				params, ok := strings.CutPrefix(b.Value, pt+" ")
				if b.Key != "fmtp" || !ok {
					continue
				}
				for _, kv := range strings.Split(params, ";") {
					if strings.EqualFold(strings.ReplaceAll(kv, " ", ""), "packetization-mode=1") {
						return true
					}
				}
			}
		}
	}
	return false
}
