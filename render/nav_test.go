package render

import "testing"

// TestEventTypes pins the string values of the event types: callers
// compared them as plain strings before the constants were typed.
func TestEventTypes(t *testing.T) {
	for _, tt := range []struct {
		typ  EventType
		want string
	}{
		{EventURL, "url"},
		{EventTitle, "title"},
		{EventDialog, "dialog"},
		{EventAuth, "auth"},
		{EventDialogClosed, "dialog-closed"},
		{EventCrashed, "crashed"},
		{EventClosed, "closed"},
		{EventDownload, "download"},
		{EventFileChooser, "file-chooser"},
	} {
		if string(tt.typ) != tt.want {
			t.Errorf("event type %q, want %q", tt.typ, tt.want)
		}
	}
}
