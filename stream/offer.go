package stream

import (
	"fmt"

	"github.com/pion/sdp/v3"
)

// checkOffer rejects, before pion sees it, an offer that does not parse or
// has no video section in which we could send VP8 or H.264.
func checkOffer(offer string) error {
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
		if offerSendable(md) {
			return nil
		}
	}
	return fmt.Errorf("%w: no video section lets us send VP8 or H.264 (packetization-mode 1)", ErrBadOffer)
}
