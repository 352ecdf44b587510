// Glovebox's agent in the remote page. It runs in an isolated world of
// every frame (render/agent.go installs it): the page's own scripts share
// the DOM with it but see none of its names, listeners' closures or the
// binding it reports through. It tells Glovebox what headless Chromium
// does not paint or report: the cursor shape, a <select>'s popup, date,
// time and colour pickers, the context menu, fullscreen. It answers only
// the user's own input (isTrusted): events the page makes up are no
// reason to open anything.
// What it reports is only a hint: Glovebox checks every field before
// anything reaches the user.
(() => {
  const BINDING = '__gloveboxReport';
  if (globalThis.__gloveboxAgent) return;
  const top = window === window.top;
  const COPY_MAX = 32 << 10; // render.MaxCopyText, in UTF-16 units here

  function send(m) {
    const report = globalThis[BINDING];
    if (typeof report !== 'function') return;
    try { report(JSON.stringify(m)); } catch (e) { /* too large, or gone */ }
  }

  const TEXT_INPUTS = new Set(['', 'text', 'search', 'url', 'tel', 'email', 'password', 'number',
    'date', 'datetime-local', 'month', 'week', 'time']);
  function editable(el) {
    if (!el || el.nodeType !== 1) return false;
    if (el.isContentEditable) return true;
    if (el.localName === 'textarea') return !el.disabled;
    if (el.localName === 'input') return !el.disabled && TEXT_INPUTS.has((el.getAttribute('type') || '').toLowerCase());
    return false;
  }

  // selectedText is the selection: in a text field, or in the document.
  function selectedText() {
    const el = document.activeElement;
    if (el && (el.localName === 'textarea' || el.localName === 'input')) {
      try {
        if (typeof el.selectionStart === 'number') return String(el.value).slice(el.selectionStart, el.selectionEnd);
      } catch (e) { /* a type without a selection */ }
    }
    return String(getSelection() || '');
  }

  // imageAt is the box of the loaded image at (x, y), within the viewport,
  // or null.
  function imageAt(x, y) {
    const img = document.elementsFromPoint(x, y).find((n) => n instanceof HTMLImageElement);
    if (!img || !img.complete || !img.naturalWidth) return null;
    const b = img.getBoundingClientRect();
    const l = Math.max(0, b.left), t = Math.max(0, b.top);
    const r = Math.min(innerWidth, b.right), btm = Math.min(innerHeight, b.bottom);
    return r - l >= 1 && btm - t >= 1 ? { x: l, y: t, w: r - l, h: btm - t } : null;
  }

  // overText says whether (x, y) is over a text node's glyphs, where
  // Chromium's cursor 'auto' is the I-beam.
  function overText(x, y) {
    const r = document.caretRangeFromPoint && document.caretRangeFromPoint(x, y);
    if (!r || r.startContainer.nodeType !== 3) return false;
    const range = document.createRange();
    range.selectNodeContents(r.startContainer);
    for (const b of range.getClientRects()) {
      if (x >= b.left && x <= b.right && y >= b.top && y <= b.bottom) return true;
    }
    return false;
  }

  // cursorAt is the cursor Chromium would show over el at (x, y): the
  // computed cursor, whose last keyword stands for a url() image, with
  // 'auto' resolved as Chromium resolves it.
  function cursorAt(el, x, y) {
    if (!el || el.nodeType !== 1) return 'default';
    const style = getComputedStyle(el);
    // The resize grip of a textarea (or of any box with CSS resize).
    if (style.resize && style.resize !== 'none') {
      const b = el.getBoundingClientRect();
      if (x >= b.right - 16 && y >= b.bottom - 16 && x <= b.right && y <= b.bottom) {
        return style.resize === 'horizontal' ? 'ew-resize' : style.resize === 'vertical' ? 'ns-resize' : 'nwse-resize';
      }
    }
    const value = String(style.cursor || 'auto');
    const c = value.slice(value.lastIndexOf(',') + 1).trim().slice(0, 64);
    if (c !== 'auto') return c;
    if (editable(el)) return 'text';
    if (style.userSelect !== 'none' && overText(x, y)) return 'text';
    return 'default';
  }

  let cursor = '';
  let px = -1, py = -1;
  function updateCursor(el) {
    const c = cursorAt(el, px, py);
    if (c !== cursor) {
      cursor = c;
      send({ t: 'cursor', cursor: c });
    }
  }
  addEventListener('mousemove', (ev) => {
    if (!ev.isTrusted) return;
    px = ev.clientX; py = ev.clientY;
    updateCursor(ev.composedPath()[0]);
  }, { capture: true, passive: true });
  // A page changes its cursor without the pointer moving (busy, a
  // hovered element restyled, scrolling): look again now and then.
  setInterval(() => {
    if (px >= 0 && document.visibilityState === 'visible') updateCursor(document.elementFromPoint(px, py));
  }, 400);

  // <select> popups: headless Chromium opens them but paints nothing, so
  // the popup is left to the landing page. A page that handles the
  // press itself (its own dropdown) keeps it: the check is on window, in
  // the bubble phase, after the page's own listeners.
  const MAX_OPTIONS = 300;
  let current = null; // { id, el } of the select whose list is open
  const PICKERS = new Set(['date', 'time', 'datetime-local', 'month', 'week', 'color']);
  let picker = null; // { id, el } of the input whose picker is open
  let nextID = 1;
  function openList(ev, el) {
    if (!el || el.disabled || el.multiple || el.size > 1) return;
    ev.preventDefault();
    el.focus();
    const b = el.getBoundingClientRect();
    const options = [];
    for (const o of Array.prototype.slice.call(el.options, 0, MAX_OPTIONS)) {
      const g = o.parentElement && o.parentElement.localName === 'optgroup' ? o.parentElement : null;
      options.push({ label: String(o.label).slice(0, 200), group: g ? String(g.label).slice(0, 200) : '',
        disabled: o.disabled || !!(g && g.disabled), selected: o.selected });
    }
    current = { id: nextID++, el };
    send({ t: 'select', id: current.id, x: b.left, y: b.top, w: b.width, h: b.height, options });
  }
  if (top) {
    addEventListener('mousedown', (ev) => {
      if (!ev.isTrusted || ev.button !== 0 || ev.defaultPrevented) return;
      openList(ev, ev.composedPath().find((n) => n instanceof HTMLSelectElement));
    });
    // The keys that open a focused select's popup, as Chromium on Linux
    // has them (the arrows alone change the value, which Chromium does).
    addEventListener('keydown', (ev) => {
      const el = ev.composedPath()[0];
      if (!ev.isTrusted || ev.defaultPrevented || !(el instanceof HTMLSelectElement)) return;
      if (ev.key === ' ' || ev.key === 'F4' || (ev.altKey && (ev.key === 'ArrowDown' || ev.key === 'ArrowUp'))) openList(ev, el);
    });

    // Date, time and colour pickers: their popups are not painted either.
    addEventListener('click', (ev) => {
      const el = ev.composedPath()[0];
      if (!ev.isTrusted || ev.defaultPrevented || !(el instanceof HTMLInputElement) || el.disabled || el.readOnly) return;
      const kind = String(el.type);
      if (!PICKERS.has(kind)) return;
      ev.preventDefault();
      el.focus();
      const b = el.getBoundingClientRect();
      picker = { id: nextID++, el };
      send({ t: 'picker', id: picker.id, kind, value: String(el.value).slice(0, 64), min: String(el.min).slice(0, 64),
        max: String(el.max).slice(0, 64), x: b.left, y: b.top, w: b.width, h: b.height });
    });

    addEventListener('contextmenu', (ev) => {
      if (!ev.isTrusted || ev.defaultPrevented) return;
      const path = ev.composedPath();
      const a = path.find((n) => n instanceof HTMLAnchorElement && n.href);
      send({ t: 'context', x: ev.clientX, y: ev.clientY, link: a ? String(a.href).slice(0, 8192) : '',
        selection: selectedText().length > 0, editable: editable(path[0]), image: !!imageAt(ev.clientX, ev.clientY) });
    });

    document.addEventListener('fullscreenchange', () => send({ t: 'fullscreen', on: !!document.fullscreenElement }));

    // What the page wrote with the async Clipboard API (copyhook.js tells
    // it), while the user's click or key lets a page write the clipboard.
    // The hook's event is the page's to fire too: its text is only what
    // the page could have written anyway, and only within an activation.
    // The page's window.print() (copyhook.js tells it): the user is asked,
    // as a print dialog would, at most once in two seconds.
    let lastPrint = -Infinity;
    document.addEventListener('glovebox-remote-print', () => {
      if (performance.now() - lastPrint < 2000) return;
      lastPrint = performance.now();
      send({ t: 'print' });
    });

    // One copy per click or key of the user's: a page firing the event
    // in a loop gets one through.
    let inputs = 0, copiedAt = -1;
    for (const type of ['pointerdown', 'keydown']) {
      addEventListener(type, (ev) => { if (ev.isTrusted) inputs++; }, { capture: true, passive: true });
    }
    document.addEventListener('glovebox-remote-copy', (ev) => {
      const text = ev instanceof CustomEvent && typeof ev.detail === 'string' ? ev.detail : '';
      if (!text || !navigator.userActivation || !navigator.userActivation.isActive || copiedAt === inputs) return;
      copiedAt = inputs;
      send({ t: 'copy', text: text.slice(0, COPY_MAX) });
    });
  }

  // What Glovebox calls, in this world only.
  Object.defineProperty(globalThis, '__gloveboxAgent', {
    value: Object.freeze({
      // choose applies the user's choice in the list of select id: the
      // page gets input and change, as from its own popup.
      choose(id, index) {
        if (!current || current.id !== id || !current.el.isConnected) return false;
        const el = current.el;
        const o = el.options[index];
        if (!o || o.disabled || (o.parentElement && o.parentElement.disabled)) return false;
        current = null;
        if (el.selectedIndex !== index) {
          el.selectedIndex = index;
          el.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
          el.dispatchEvent(new Event('change', { bubbles: true }));
        }
        return true;
      },
      // pick sets the value the user picked for the input of picker id.
      pick(id, value) {
        if (!picker || picker.id !== id || !picker.el.isConnected) return false;
        const el = picker.el;
        picker = null;
        if (el.value !== value) {
          el.value = value;
          el.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
          el.dispatchEvent(new Event('change', { bubbles: true }));
        }
        return true;
      },
      // selection is the text selected in the page, for Copy.
      selection() { return selectedText().slice(0, 32768); },
      // paste fires a paste event carrying text at the focused element,
      // as the browser does for the user's own paste: true when the page
      // took it (preventDefault), and the text is then not inserted.
      paste(text) {
        const dt = new DataTransfer();
        dt.setData('text/plain', String(text));
        const target = document.activeElement || document.body;
        return !target.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true, composed: true }));
      },
      // image is the box of the image at (x, y), for Copy image.
      image(x, y) { return imageAt(x, y); },
      // pasteImage fires a paste event carrying an image file (base64 of
      // type) at the focused element: true when the page took it.
      pasteImage(b64, type) {
        const bin = atob(b64);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        const ext = type.slice(type.indexOf('/') + 1);
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'image.' + ext, { type }));
        const target = document.activeElement || document.body;
        return !target.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true, composed: true }));
      },
      exitFullscreen() {
        if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
        return true;
      },
    }),
  });
})();
