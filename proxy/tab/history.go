package tab

import (
	"context"

	"github.com/glovebox/glovebox/render"
)

// urlMsg tells the landing page where the remote page is: its URL and its
// history entry, which the landing page mirrors in the user's history.
func urlMsg(ev render.Event) serverMsg {
	index := ev.Index
	return serverMsg{T: "url", URL: ev.URL, Entry: ev.Entry, Index: &index, Push: ev.Push}
}

// navigate moves the remote page in its history, or reloads it, for the
// user's Back, Forward and reload in the landing page. The url event of
// where the page lands tells the landing page.
func (t *Tab) navigate(ctx context.Context, m clientMsg) error {
	switch m.Action {
	case "back":
		return t.page.GoBack(ctx)
	case "forward":
		return t.page.GoForward(ctx)
	case "entry":
		return t.page.GoToEntry(ctx, m.Entry)
	case "reload":
		return t.page.Reload(ctx)
	}
	return nil
}
