package render

import (
	"context"
	"fmt"
	"time"

	"github.com/chromedp/cdproto/page"
)

// The page's session history, as Chromium's navigation controller keeps it,
// is what the landing page mirrors in the user's own history: every url
// event says which entry the page is on (its unique id and its index) and
// whether a navigation added it after the previous one (Push), so that the
// landing page adds a local entry exactly when the remote page did.

// histEntry is one entry of the page's session history.
type histEntry struct {
	id  int64
	url string
	// transition is Chromium's transition type of the navigation that
	// made the entry (link, typed, form_submit, reload, …).
	transition string
}

// history is the latest snapshot of the page's session history and the url
// event last emitted for it. Only navLoop (and Open, before it starts)
// touches it.
type history struct {
	entries []histEntry
	index   int
	last    Event // the last EventURL emitted
}

// update takes a new snapshot and returns the url events that bring a
// listener from the previous one to it, in order: the entries a navigation
// added after the current one (several when navigations came faster than
// snapshots), each with Push; a move to another existing entry (Back,
// Forward, history.go) or a replaced entry, without. A snapshot that moves
// nothing (a reload) returns none.
func (h *history) update(entries []histEntry, index int) []Event {
	if index < 0 || index >= len(entries) {
		return nil
	}
	known := make(map[int64]bool, len(h.entries))
	for _, e := range h.entries {
		known[e.id] = true
	}
	var prevID int64
	prevIndex := h.index
	if prevIndex >= 0 && prevIndex < len(h.entries) {
		prevID = h.entries[prevIndex].id
	}
	h.entries, h.index = entries, index

	// The new entries up to the current one follow the last entry that
	// was there before: the previous current one when they were pushed
	// after it, another when the page went elsewhere first.
	j := index
	for j >= 0 && !known[entries[j].id] {
		j--
	}
	prevGone := prevID != 0
	for _, e := range entries {
		if e.id == prevID {
			prevGone = false
		}
	}
	var out []Event
	first := j + 1
	switch {
	case j < 0:
		// Nothing known is left before it: the first new entry replaced
		// what there was (or this is the first snapshot).
		out = append(out, h.event(entries, 0, false))
		first = 1
	case prevGone && j+1 == prevIndex && j < index:
		// The current entry gave way to a new one in its place
		// (location.replace, a client redirect).
		ev := h.event(entries, j+1, false)
		ev.How = HowRedirect
		out = append(out, ev)
		first = j + 2
	case entries[j].id != prevID || j == index:
		// A move to another existing entry, or within the current one.
		ev := h.event(entries, j, false)
		ev.How = HowBackForward
		if entries[j].id == prevID {
			ev.How = "" // the same entry, its URL changed: no navigation
		}
		out = append(out, ev)
	}
	for i := first; i <= index; i++ {
		out = append(out, h.event(entries, i, true))
	}
	// Nothing moved (a reload, or another frame's navigation within the
	// same entry): no event.
	kept := out[:0]
	for _, ev := range out {
		if ev.Push || ev.Entry != h.last.Entry || ev.URL != h.last.URL {
			kept = append(kept, ev)
			h.last = ev
		}
	}
	return kept
}

func (h *history) event(entries []histEntry, i int, push bool) Event {
	return Event{Type: EventURL, URL: entries[i].url, Entry: entries[i].id, Index: i, Push: push, How: how(entries[i].transition)}
}

// How a page came to an entry (Event.How).
const (
	HowLink        = "link"
	HowTyped       = "typed" // the user's address (the landing page's URL)
	HowForm        = "form"
	HowReload      = "reload"
	HowBackForward = "back_forward"
	HowRedirect    = "redirect" // a client redirect or location.replace
	HowOther       = "other"
)

// how is Event.How for Chromium's transition type.
func how(transition string) string {
	switch transition {
	case "link":
		return HowLink
	case "typed", "address_bar", "auto_bookmark", "generated", "keyword", "keyword_generated":
		return HowTyped
	case "form_submit":
		return HowForm
	case "reload":
		return HowReload
	}
	return HowOther
}

// readHistory returns the page's session history and its current index.
func (t *Tab) readHistory(ctx context.Context) ([]histEntry, int, error) {
	res := new(page.GetNavigationHistoryResult)
	if err := t.callResult(ctx, page.CommandGetNavigationHistory, nil, res); err != nil {
		return nil, 0, fmt.Errorf("read history: %w", err)
	}
	entries := make([]histEntry, 0, len(res.Entries))
	for _, e := range res.Entries {
		if e != nil {
			entries = append(entries, histEntry{id: e.ID, url: e.URL, transition: string(e.TransitionType)})
		}
	}
	return entries, int(res.CurrentIndex), nil
}

// kickNav makes navLoop read the history now.
func (t *Tab) kickNav() {
	select {
	case t.navKick <- struct{}{}:
	default:
	}
}

// seedHistory takes the first snapshot, before navLoop starts, so that only
// what happens after Open is reported.
func (t *Tab) seedHistory(ctx context.Context) error {
	entries, index, err := t.readHistory(ctx)
	if err != nil {
		return err
	}
	evs := t.hist.update(entries, index)
	if len(evs) > 0 {
		t.mu.Lock()
		t.entry = evs[len(evs)-1]
		t.mu.Unlock()
	}
	return nil
}

// navTries bounds the reads of the history after one kick.
const navTries = 10

// navLoop reads the history after each navigation of any frame (a frame's
// navigation adds an entry too) and emits the url events it implies. The
// listener cannot run the command itself; kicks that come while a read is
// under way make one more read, so the last snapshot is always taken.
func (t *Tab) navLoop() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.done:
			return
		case <-t.navKick:
		}
		entries, index, err := t.readHistory(t.ctx)
		for try := 1; err != nil && try < navTries && t.ctx.Err() == nil; try++ {
			// Chromium refuses the command while the page's frame is
			// being swapped at a navigation's commit ("Not attached to
			// an active page"), which is when the kick comes.
			select {
			case <-t.ctx.Done():
			case <-t.done:
			case <-time.After(time.Duration(try) * 20 * time.Millisecond):
			}
			entries, index, err = t.readHistory(t.ctx)
		}
		if err != nil {
			if t.ctx.Err() == nil {
				t.log.Debug("read history", "err", err)
			}
			continue
		}
		for _, ev := range t.hist.update(entries, index) {
			t.mu.Lock()
			t.entry = ev
			t.mu.Unlock()
			t.emit(ev)
		}
	}
}

// Entry returns the url event of the page's current history entry, as
// last reported (Push unset): what a landing page that attaches now must
// show.
func (t *Tab) Entry() Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	ev := t.entry
	ev.Push = false
	return ev
}

// GoBack moves the page one entry back in its history, as the browser's Back
// button does; it does nothing on the first entry.
func (t *Tab) GoBack(ctx context.Context) error { return t.step(ctx, -1) }

// GoForward moves the page one entry forward in its history; it does
// nothing on the last entry.
func (t *Tab) GoForward(ctx context.Context) error { return t.step(ctx, 1) }

func (t *Tab) step(ctx context.Context, delta int) error {
	entries, index, err := t.readHistory(ctx)
	if err != nil {
		return err
	}
	i := index + delta
	if i < 0 || i >= len(entries) {
		return nil
	}
	return t.goTo(ctx, entries[i].id)
}

// GoToEntry moves the page to the history entry with id (an Event's Entry),
// unless it is there already. An id the history does not have is bad input.
func (t *Tab) GoToEntry(ctx context.Context, id int64) error {
	entries, index, err := t.readHistory(ctx)
	if err != nil {
		return err
	}
	for i, e := range entries {
		if e.id != id {
			continue
		}
		if i == index {
			return nil
		}
		return t.goTo(ctx, id)
	}
	return fmt.Errorf("%w: no history entry %d", ErrBadInput, id)
}

func (t *Tab) goTo(ctx context.Context, id int64) error {
	if err := t.call(ctx, page.CommandNavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: id}); err != nil {
		return fmt.Errorf("go to history entry %d: %w", id, err)
	}
	return nil
}

// Reload reloads the page, as the browser's reload button does: the history
// entry stays the same.
func (t *Tab) Reload(ctx context.Context) error {
	if err := t.call(ctx, page.CommandReload, page.ReloadParams{}); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return nil
}
