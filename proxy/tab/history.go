package tab

import (
	"context"
	"errors"

	"github.com/glovebox/glovebox/render"
)

// urlMsg tells the landing page where the remote page is: its URL and its
// history entry, which the landing page mirrors in the user's history.
func (t *Tab) urlMsg(ev render.Event) serverMsg {
	index := ev.Index
	return serverMsg{T: "url", URL: ev.URL, Tab: t.id, Entry: ev.Entry, Index: &index, Push: ev.Push}
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
		err := t.page.GoToEntry(ctx, m.Entry)
		if errors.Is(err, render.ErrBadInput) {
			// An entry of another remote tab (this one replaced a tab that
			// ended): the landing page must stop waiting for it and
			// follow where this tab is.
			msg := t.urlMsg(t.page.Entry())
			msg.Settled = true
			t.send(msg)
		}
		return err
	case "reload":
		// The page stays on its entry: no url event says it.
		t.auditURL(render.Event{URL: t.currentURL(), How: render.HowReload})
		return t.page.Reload(ctx)
	}
	return nil
}
