package tab

import "github.com/glovebox/glovebox/proxy/policy"

// Controls are what may cross between the tab and its user now: the
// policy rule of the site it shows (they change when the tab is handed to
// another site's rule).
func (t *Tab) Controls() policy.Controls {
	if c := t.controls.Load(); c != nil {
		return *c
	}
	return policy.Controls{ClipboardOut: policy.ClipboardDeny, ClipboardIn: policy.ClipboardDeny,
		Download: policy.FileDeny, Upload: policy.FileDeny, Print: policy.FileDeny, Keyboard: policy.FileAllow}
}

// SetControls sets the tab's controls, from the policy decision of the
// site it shows; one that says record starts the tab's recording.
func (t *Tab) SetControls(c policy.Controls) {
	t.controls.Store(&c)
	t.startRecording()
}
