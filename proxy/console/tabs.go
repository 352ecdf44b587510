package console

import (
	"net/http"
	"time"

	"github.com/glovebox/glovebox/proxy/tab"
)

// tabJSON is one live tab as the console lists it.
type tabJSON struct {
	Tab        string    `json:"tab"`
	User       string    `json:"user"`
	ClientIP   string    `json:"client_ip"`
	URL        string    `json:"url"`
	CurrentURL string    `json:"current_url"`
	Title      string    `json:"title"`
	Started    time.Time `json:"started"`
	IdleS      float64   `json:"idle_s"`
	Starting   bool      `json:"starting"`
	Ending     bool      `json:"ending"`
	Runtime    string    `json:"runtime"`
	Container  string    `json:"container"`
	Opener     string    `json:"opener,omitempty"`
	Attached   bool      `json:"attached"`
	Media      mediaJSON `json:"media"`
}

// mediaJSON are a tab's media figures: the counters over all its peers,
// the link's (bitrate, RTT, loss, size, codec) the attached peer's.
type mediaJSON struct {
	Codec         string  `json:"codec"`
	Width         int     `json:"width"`
	Height        int     `json:"height"`
	FramesSent    uint64  `json:"frames_sent"`
	FramesSkipped uint64  `json:"frames_skipped"`
	Keyframes     uint64  `json:"keyframes"`
	BytesSent     uint64  `json:"bytes_sent"`
	BitrateBPS    int     `json:"bitrate_bps"`
	RTTms         float64 `json:"rtt_ms"`
	Loss          float64 `json:"loss"`
	PacketsLost   int64   `json:"packets_lost"`
	AudioPackets  uint64  `json:"audio_packets"`
}

func toJSON(in tab.Info, now time.Time) tabJSON {
	s := in.Media
	return tabJSON{Tab: in.Tab, User: in.User, ClientIP: in.ClientIP, URL: in.URL, CurrentURL: in.CurrentURL, Title: in.Title,
		Started: in.Started.UTC(), IdleS: now.Sub(in.LastActive).Round(time.Second).Seconds(), Starting: in.Starting, Ending: in.Ending,
		Runtime: in.Runtime, Container: in.Browser, Opener: in.Opener, Attached: in.Attached,
		Media: mediaJSON{Codec: s.Codec, Width: s.Width, Height: s.Height, FramesSent: s.FramesSent, FramesSkipped: s.FramesSkipped,
			Keyframes: s.Keyframes, BytesSent: s.BytesSent, BitrateBPS: s.TargetBitrate,
			RTTms: float64(s.RTT.Microseconds()) / 1000, Loss: s.FractionLost, PacketsLost: s.PacketsLost, AudioPackets: s.AudioPackets}}
}

func (c *Console) listTabs(w http.ResponseWriter, r *http.Request, a admin) {
	now := time.Now()
	list := c.tabs.TabList()
	out := make([]tabJSON, 0, len(list))
	for _, in := range list {
		out = append(out, toJSON(in, now))
	}
	c.note(a, r, "list_tabs", "", "", http.StatusOK, true)
	writeJSON(w, http.StatusOK, map[string]any{"tabs": out})
}

// endTab ends a tab for tab.ReasonAdmin: its landing page says an
// administrator ended it.
func (c *Console) endTab(w http.ResponseWriter, r *http.Request, a admin) {
	id := r.PathValue("id")
	user := c.tabUser(id)
	if user == "" || !c.tabs.EndTab(id, tab.ReasonAdmin) {
		c.note(a, r, "end_tab", id, "", http.StatusNotFound, false)
		writeError(w, http.StatusNotFound, "No such tab: it has ended already.")
		return
	}
	c.log.Info("tab ended by an administrator", "admin", a.name, "tab", id)
	c.note(a, r, "end_tab", id, user, http.StatusOK, false)
	writeJSON(w, http.StatusOK, map[string]string{"ended": id})
}

// tabUser names who tab id is for in admin_action's target: its user, or
// its client's address without proxy authentication; "" when no tab has
// that id.
func (c *Console) tabUser(id string) string {
	for _, in := range c.tabs.TabList() {
		if in.Tab == id {
			if in.User != "" {
				return in.User
			}
			return in.ClientIP
		}
	}
	return ""
}
