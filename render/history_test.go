package render

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func entries(ids ...int64) []histEntry {
	out := make([]histEntry, len(ids))
	for i, id := range ids {
		out[i] = histEntry{id: id, url: fmt.Sprintf("http://h/%d", id)}
	}
	return out
}

// TestHistoryUpdate pins which url events a new snapshot of the session
// history makes: what the landing page needs to mirror it with pushState,
// replaceState and history.go.
func TestHistoryUpdate(t *testing.T) {
	type snap struct {
		ids   []int64
		index int
	}
	// want lists the events of the last snapshot as "entry@index" with a
	// "+" for Push, and "<" for a move back or forward, "~" for a
	// redirect (Event.How).
	tests := []struct {
		name  string
		snaps []snap
		want  []string
	}{
		{"first snapshot", []snap{{[]int64{1}, 0}}, []string{"1@0"}},
		{"link", []snap{{[]int64{1}, 0}, {[]int64{1, 2}, 1}}, []string{"+2@1"}},
		{"two links between snapshots", []snap{{[]int64{1}, 0}, {[]int64{1, 2, 3}, 2}}, []string{"+2@1", "+3@2"}},
		{"back", []snap{{[]int64{1, 2}, 1}, {[]int64{1, 2}, 0}}, []string{"1@0<"}},
		{"forward", []snap{{[]int64{1, 2}, 0}, {[]int64{1, 2}, 1}}, []string{"2@1<"}},
		{"link after back prunes", []snap{{[]int64{1, 2, 3}, 1}, {[]int64{1, 2, 4}, 2}}, []string{"+4@2"}},
		{"back then link", []snap{{[]int64{1, 2, 3}, 2}, {[]int64{1, 4}, 1}}, []string{"1@0<", "+4@1"}},
		{"replace", []snap{{[]int64{1, 2}, 1}, {[]int64{1, 5}, 1}}, []string{"5@1~"}},
		{"replace keeps forward entries", []snap{{[]int64{1, 2, 3}, 1}, {[]int64{1, 5, 3}, 1}}, []string{"5@1~"}},
		{"reload", []snap{{[]int64{1, 2}, 1}, {[]int64{1, 2}, 1}}, nil},
		{"full history drops its first", []snap{{[]int64{1, 2, 3}, 2}, {[]int64{2, 3, 4}, 2}}, []string{"+4@2"}},
		{"all new", []snap{{[]int64{1, 2}, 1}, {[]int64{7, 8}, 1}}, []string{"7@0", "+8@1"}},
		{"index out of range", []snap{{[]int64{1}, 0}, {[]int64{1}, 3}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h history
			var got []string
			for _, s := range tt.snaps {
				got = got[:0]
				for _, ev := range h.update(entries(s.ids...), s.index) {
					if ev.Type != EventURL || ev.URL != fmt.Sprintf("http://h/%d", ev.Entry) {
						t.Errorf("event %+v", ev)
					}
					p := ""
					if ev.Push {
						p = "+"
					}
					got = append(got, fmt.Sprintf("%s%d@%d%s", p, ev.Entry, ev.Index, map[string]string{HowBackForward: "<", HowRedirect: "~"}[ev.How]))
				}
			}
			if !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("events %v, want %v", got, tt.want)
			}
		})
	}
	// A change of URL within the same entry is reported; the same
	// snapshot again is not.
	var h history
	h.update(entries(1), 0)
	moved := []histEntry{{id: 1, url: "http://h/1#x"}}
	if evs := h.update(moved, 0); len(evs) != 1 || evs[0].URL != "http://h/1#x" || evs[0].Push || evs[0].How != "" {
		t.Errorf("same entry, new URL: %+v", evs)
	}
	if evs := h.update(moved, 0); len(evs) != 0 {
		t.Errorf("same snapshot again: %+v", evs)
	}
}

// TestHistoryNavigation drives a real page through links, pushState, Back,
// Forward, a history entry by id and a reload, and checks the url events
// say which entry the page is on and which navigations added one.
func TestHistoryNavigation(t *testing.T) {
	tab, s := openTab(t, 400, 300, 1, "/link")
	urlEvent := func(suffix string) Event {
		t.Helper()
		return waitEvent(t, s, func(ev Event) bool { return ev.Type == EventURL && strings.HasSuffix(ev.URL, suffix) })
	}
	start := urlEvent("/link")
	if start.Entry == 0 || !start.Push {
		t.Fatalf("url event of the first navigation: %+v", start)
	}
	if got := tab.Entry(); got.Entry != start.Entry || got.URL != start.URL {
		t.Errorf("Entry() = %+v, want %+v", got, start)
	}
	click(t, tab, 100, 100)
	target := urlEvent("/target")
	if !target.Push || target.Index != start.Index+1 || target.Entry == start.Entry {
		t.Errorf("link: %+v after %+v, want a pushed entry after it", target, start)
	}
	if start.How != HowTyped || target.How != HowLink {
		t.Errorf("how: first navigation %q, link %q; want typed, link", start.How, target.How)
	}
	evaluate[any](t, tab, `history.pushState(null, "", "/pushed")`)
	pushed := urlEvent("/pushed")
	if !pushed.Push || pushed.Index != target.Index+1 {
		t.Errorf("pushState: %+v after %+v", pushed, target)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tab.GoBack(ctx); err != nil {
		t.Fatal(err)
	}
	back := urlEvent("/target")
	if back.Push || back.Entry != target.Entry || back.Index != target.Index || back.How != HowBackForward {
		t.Errorf("back: %+v, want entry %d, how back_forward", back, target.Entry)
	}
	t.Logf("how: pushState %q", pushed.How)
	if err := tab.GoToEntry(ctx, start.Entry); err != nil {
		t.Fatal(err)
	}
	if ev := urlEvent("/link"); ev.Push || ev.Entry != start.Entry {
		t.Errorf("go to the first entry: %+v, want entry %d", ev, start.Entry)
	}
	if err := tab.GoForward(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := urlEvent("/target"); ev.Push || ev.Entry != target.Entry {
		t.Errorf("forward: %+v, want entry %d", ev, target.Entry)
	}
	if got := tab.Entry(); got.Entry != target.Entry || got.URL != server.URL+"/target" {
		t.Errorf("Entry() = %+v", got)
	}

	// A reload reloads (a new document) and stays on the entry.
	evaluate[any](t, tab, `window.before = 1`)
	if err := tab.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	poll(t, tab, `window.before === undefined && document.readyState === "complete"`)
	if got := tab.Entry(); got.Entry != target.Entry {
		t.Errorf("Entry() after reload = %+v", got)
	}
	if err := tab.GoToEntry(ctx, 1<<40); err == nil {
		t.Error("GoToEntry of an unknown id: no error")
	}
	// The next test gets this page: leave it blank, as it came.
	if err := tab.Navigate(ctx, "about:blank"); err != nil {
		t.Fatal(err)
	}
}
