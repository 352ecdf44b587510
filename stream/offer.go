package stream

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
)

// checkOffer rejects, before pion sees it, an offer that does not parse or
// has no video section in which we could send one of the codecs of prefs.
func checkOffer(offer string, prefs []string) error {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return fmt.Errorf("%w: parse sdp: %w", ErrBadOffer, err)
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "video" || md.MediaName.Port.Value == 0 {
			continue
		}
		if _, ok := md.Attribute("sendonly"); ok {
			continue
		}
		if _, ok := md.Attribute("inactive"); ok {
			continue
		}
		if offerSendable(md, prefs) {
			return nil
		}
	}
	return fmt.Errorf("%w: no video section lets us send %s", ErrBadOffer, codecList(prefs))
}

// codecList names the codecs of prefs for an error message.
func codecList(prefs []string) string {
	var names []string
	for _, n := range prefs {
		switch n {
		case CodecVP8:
			names = append(names, "VP8")
		case CodecH264:
			names = append(names, "H.264 (packetization-mode 1)")
		}
	}
	return strings.Join(names, " or ")
}
