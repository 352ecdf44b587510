package render

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
)

// EventFileChooser is sent when the page opened a file chooser (a click on
// an <input type=file>): headless Chromium shows none, and the page waits
// for SetChooserFiles. Chooser says what it asks for.
const EventFileChooser EventType = "file-chooser"

// FileChooser is a file chooser the page opened.
type FileChooser struct {
	// ID names it in SetChooserFiles.
	ID int
	// Multiple says the input takes several files; Accept is its accept
	// attribute (types and extensions, the page's words, at most
	// maxAcceptLen bytes).
	Multiple bool
	Accept   string
}

// Bounds of file choosers.
const (
	maxChoosers  = 16 // open at once; past it the oldest is forgotten
	maxAcceptLen = 1024
	// MaxChooserFiles bounds the files given to one chooser.
	MaxChooserFiles = 32
)

// choosers are the file choosers the page has open, by id.
type choosers struct {
	mu    sync.Mutex
	next  int
	nodes map[int]cdp.BackendNodeID
	order []int
}

func (c *choosers) add(n cdp.BackendNodeID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes == nil {
		c.nodes = map[int]cdp.BackendNodeID{}
	}
	c.next++
	c.nodes[c.next] = n
	c.order = append(c.order, c.next)
	if len(c.order) > maxChoosers {
		delete(c.nodes, c.order[0])
		c.order = c.order[1:]
	}
	return c.next
}

func (c *choosers) take(id int) (cdp.BackendNodeID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[id]
	delete(c.nodes, id)
	return n, ok
}

// interceptFileChoosers makes the page's file choosers events.
func (t *Tab) interceptFileChoosers(ctx context.Context) error {
	if err := t.call(ctx, page.CommandSetInterceptFileChooserDialog, page.SetInterceptFileChooserDialogParams{Enabled: true}); err != nil {
		return fmt.Errorf("intercept file choosers: %w", err)
	}
	return nil
}

// onFileChooser reports a file chooser, with its input's accept
// attribute. It runs on a goroutine of its own.
func (t *Tab) onFileChooser(ev *page.EventFileChooserOpened) {
	if ev.BackendNodeID == 0 {
		return // not an <input type=file> (showOpenFilePicker): nothing to set files on
	}
	fc := FileChooser{Multiple: ev.Mode == page.FileChooserOpenedModeSelectMultiple}
	res := new(dom.DescribeNodeResult)
	if err := t.callResult(t.ctx, dom.CommandDescribeNode, dom.DescribeNodeParams{BackendNodeID: ev.BackendNodeID}, res); err == nil && res.Node != nil {
		a := res.Node.Attributes
		for i := 0; i+1 < len(a); i += 2 {
			if strings.EqualFold(a[i], "accept") && len(a[i+1]) <= maxAcceptLen {
				fc.Accept = a[i+1]
			}
		}
	}
	fc.ID = t.fileChoosers.add(ev.BackendNodeID)
	t.emit(Event{Type: EventFileChooser, Chooser: &fc})
}

// SetChooserFiles gives the file chooser id the files at paths (as the
// browser sees them; the caller put them there): the input gets them,
// with its input and change events. A chooser is answered once.
func (t *Tab) SetChooserFiles(ctx context.Context, id int, paths []string) error {
	if len(paths) == 0 || len(paths) > MaxChooserFiles {
		return fmt.Errorf("%w: %d files for a chooser (1 to %d)", ErrBadInput, len(paths), MaxChooserFiles)
	}
	n, ok := t.fileChoosers.take(id)
	if !ok {
		return fmt.Errorf("%w: no file chooser %d", ErrBadInput, id)
	}
	if err := t.call(ctx, dom.CommandSetFileInputFiles, dom.SetFileInputFilesParams{Files: paths, BackendNodeID: n}); err != nil {
		return fmt.Errorf("set the chosen files: %w", err)
	}
	return nil
}

// CancelChooser forgets the file chooser id: the user chose nothing.
func (t *Tab) CancelChooser(id int) { t.fileChoosers.take(id) }

// DropFiles drops the files at paths (as the browser sees them; the caller
// put them there) on the page at (x, y), CSS pixels of the viewport, as a
// drag from the user's desktop does: dragenter, dragover and drop, the
// files on the DataTransfer. A page that takes no drop there gets none.
func (t *Tab) DropFiles(ctx context.Context, x, y float64, paths []string) error {
	if len(paths) == 0 || len(paths) > MaxChooserFiles {
		return fmt.Errorf("%w: %d files to drop (1 to %d)", ErrBadInput, len(paths), MaxChooserFiles)
	}
	t.mu.Lock()
	w, h := t.width, t.height
	t.mu.Unlock()
	if math.IsNaN(x) || math.IsNaN(y) || x < 0 || y < 0 || x > float64(w) || y > float64(h) {
		return fmt.Errorf("%w: drop at %v,%v: outside the %dx%d viewport", ErrBadInput, x, y, w, h)
	}
	data := &input.DragData{Items: []*input.DragDataItem{}, Files: paths, DragOperationsMask: 1}
	for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
		if err := t.call(ctx, input.CommandDispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: x, Y: y, Data: data}); err != nil {
			return fmt.Errorf("drop the files: %w", err)
		}
	}
	return nil
}
