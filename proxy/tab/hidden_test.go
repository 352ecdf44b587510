package tab

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestLoud(t *testing.T) {
	pcm := make([]byte, 4096)
	if loud(pcm) {
		t.Error("silence is loud")
	}
	binary.LittleEndian.PutUint16(pcm[1000:], uint16(0xffff-40)) // -41
	if !loud(pcm) {
		t.Error("a sample at -41 is not loud")
	}
	binary.LittleEndian.PutUint16(pcm[1000:], 20)
	if loud(pcm) {
		t.Error("a sample at 20 (dither) is loud")
	}
	if loud([]byte{0xff}) {
		t.Error("half a sample is loud")
	}
}

func TestHiddenConfig(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.Hidden != HiddenFreeze {
		t.Errorf("default tabs.hidden = %q, want freeze", cfg.Hidden)
	}
	for _, v := range []string{HiddenFreeze, HiddenPause, HiddenStream} {
		cfg.Hidden = v
		if err := cfg.Validate(); err != nil {
			t.Errorf("tabs.hidden %s: %v", v, err)
		}
	}
	cfg.Hidden = "frozen"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `tabs.hidden: "frozen"`) {
		t.Errorf("tabs.hidden frozen: %v", err)
	}
}
