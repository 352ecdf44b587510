// The remote page's agent: what headless Chromium neither paints nor
// shows is drawn here. The cursor follows the remote page; a <select>
// opens as a list of this page's (#glovebox-select); a right click shows
// a small menu (#glovebox-menu); fullscreen follows the remote page's.
// Everything the remote page could influence (labels, links) is shown
// with textContent only.

const CURSORS = new Set(('auto default none context-menu help pointer progress wait cell crosshair text ' +
  'vertical-text alias copy move no-drop not-allowed grab grabbing all-scroll col-resize row-resize n-resize ' +
  'e-resize s-resize w-resize ne-resize nw-resize se-resize sw-resize ew-resize ns-resize nesw-resize ' +
  'nwse-resize zoom-in zoom-out').split(' '));

onMessage('cursor', (m) => {
  video.style.cursor = CURSORS.has(m.cursor) ? m.cursor : 'default';
});

// fromRemote maps remote CSS px to this page's: k is how many of this
// page's pixels one remote pixel is.
function fromRemote(x, y) {
  const r = video.getBoundingClientRect();
  const vw = video.videoWidth || view.width * view.dpr;
  const vh = video.videoHeight || view.height * view.dpr;
  const s = Math.min(r.width / vw, r.height / vh) || 1;
  const k = vw * s / view.width;
  return { x: r.left + (Number(x) || 0) * k, y: r.top + (Number(y) || 0) * k, k };
}

// Keys go back to the remote page once a list or menu closes: through the
// keyboard's hidden field where there is one.
function refocus() {
  focusInput();
}

// popup is the open list or menu: { el, keys(ev) → handled, close() }.
let popup = null;
// swallowed are the keys whose keydown a popup took: their keyup stays
// here too.
const swallowed = new Set();

function closePopup() {
  if (!popup) return;
  const p = popup;
  popup = null;
  p.el.remove();
  if (!p.local || document.activeElement === document.body) refocus();
}

function place(el, x, y, below) {
  document.body.appendChild(el);
  const w = el.offsetWidth;
  const h = el.offsetHeight;
  let top = y;
  if (top + h > window.innerHeight && below !== undefined) top = Math.max(0, below - h);
  el.style.left = Math.max(0, Math.min(x, window.innerWidth - w)) + 'px';
  el.style.top = Math.max(0, Math.min(top, window.innerHeight - h)) + 'px';
}

window.addEventListener('keydown', (ev) => {
  if (!popup) return;
  ev.stopImmediatePropagation();
  swallowed.add(ev.code);
  if (ev.key === 'Escape' || ev.key === 'Tab' || (popup.local && ev.key === 'Enter')) {
    ev.preventDefault();
    closePopup();
  } else if (!popup.local) {
    ev.preventDefault();
    popup.keys(ev);
  }
}, true);
window.addEventListener('keyup', (ev) => {
  if (!swallowed.delete(ev.code)) return;
  ev.preventDefault();
  ev.stopImmediatePropagation();
}, true);
// A press anywhere else closes the popup (and goes on to the page).
window.addEventListener('mousedown', (ev) => {
  if (popup && !popup.el.contains(ev.target)) closePopup();
}, true);
// A picker's own dialog may take the focus from this window.
window.addEventListener('blur', () => { if (popup && !popup.local) closePopup(); });
window.addEventListener('resize', closePopup);

// items builds the rows of a list or menu and moves the highlight
// among those that can be chosen.
function rows(el, list, choose) {
  let active = -1;
  const nodes = [];
  function highlight(i) {
    if (active >= 0) nodes[active].classList.remove('glovebox-active');
    active = i;
    if (i >= 0) {
      nodes[i].classList.add('glovebox-active');
      nodes[i].scrollIntoView({ block: 'nearest' });
    }
  }
  list.forEach((item, i) => {
    const n = item.node;
    nodes.push(n);
    if (item.disabled) {
      n.classList.add('glovebox-disabled');
      n.setAttribute('aria-disabled', 'true');
      return;
    }
    n.addEventListener('mousemove', () => { if (active !== i) highlight(i); });
    n.addEventListener('mouseup', (ev) => { if (ev.button === 0) choose(i); });
  });
  function step(from, dir) {
    for (let i = from + dir; i >= 0 && i < list.length; i += dir) {
      if (!list[i].disabled) return i;
    }
    return from;
  }
  return {
    highlight,
    keys(ev) {
      switch (ev.key) {
        case 'ArrowDown': highlight(step(active, 1)); break;
        case 'ArrowUp': highlight(step(active < 0 ? list.length : active, -1)); break;
        case 'Home': case 'PageUp': highlight(step(-1, 1)); break;
        case 'End': case 'PageDown': highlight(step(list.length, -1)); break;
        case 'Enter': case ' ': if (active >= 0) choose(active); break;
        default: break;
      }
    },
  };
}

// A <select>'s popup, drawn under the remote select, the choice sent back.
onMessage('select', (m) => {
  closePopup();
  if (!Array.isArray(m.options) || !m.options.length) return;
  const el = document.createElement('div');
  el.id = 'glovebox-select';
  el.setAttribute('role', 'listbox');
  const list = [];
  let group = '';
  let selected = -1;
  m.options.forEach((o, i) => {
    const g = String(o.group || '');
    if (g && g !== group) {
      const h = document.createElement('div');
      h.className = 'glovebox-group';
      h.textContent = g;
      el.appendChild(h);
    }
    group = g;
    const n = document.createElement('div');
    n.className = 'glovebox-option' + (g ? ' glovebox-grouped' : '');
    n.setAttribute('role', 'option');
    n.textContent = String(o.label || '') || '\u00a0';
    if (o.selected) {
      n.setAttribute('aria-selected', 'true');
      selected = i;
    }
    el.appendChild(n);
    list.push({ node: n, disabled: !!o.disabled });
  });
  const id = m.id;
  const r = rows(el, list, (i) => {
    send({ t: 'select', list: id, index: i });
    closePopup();
  });
  const a = fromRemote(m.x, m.y);
  const b = fromRemote((Number(m.x) || 0) + (Number(m.w) || 0), (Number(m.y) || 0) + (Number(m.h) || 0));
  el.style.minWidth = Math.max(0, b.x - a.x) + 'px';
  el.style.maxHeight = Math.max(120, Math.min(window.innerHeight - 16, 24 * 20)) + 'px';
  place(el, a.x, b.y, a.y);
  popup = { el, keys: r.keys };
  if (selected >= 0 && !list[selected].disabled) r.highlight(selected);
});

// Date, time and colour pickers: an input of the same kind here, over the
// remote one, whose own picker the user's browser shows; the value
// picked goes back. Keys go to it (local), not to the remote page.
const PICKERS = new Set(['date', 'time', 'datetime-local', 'month', 'week', 'color']);
onMessage('picker', (m) => {
  closePopup();
  if (!PICKERS.has(m.kind)) return;
  const el = document.createElement('input');
  el.id = 'glovebox-picker';
  el.type = m.kind;
  el.value = String(m.value || '');
  if (m.min) el.min = String(m.min);
  if (m.max) el.max = String(m.max);
  const a = fromRemote(m.x, m.y);
  const b = fromRemote((Number(m.x) || 0) + (Number(m.w) || 0), (Number(m.y) || 0) + (Number(m.h) || 0));
  el.style.width = Math.max(24, b.x - a.x) + 'px';
  el.style.height = Math.max(16, b.y - a.y) + 'px';
  const id = m.id;
  el.addEventListener('change', () => {
    send({ t: 'picker', list: id, value: el.value });
    if (m.kind === 'color') closePopup();
  });
  place(el, a.x, a.y, a.y);
  popup = { el, keys() {}, local: true };
  el.focus();
  try { el.showPicker(); } catch (e) { /* no gesture left: the user clicks the field */ }
});

// The context menu, fitting the element under the pointer.
onMessage('context', (m) => {
  closePopup();
  const el = document.createElement('div');
  el.id = 'glovebox-menu';
  el.setAttribute('role', 'menu');
  const actions = [];
  function item(label, fn) {
    const n = document.createElement('div');
    n.className = 'glovebox-item';
    n.setAttribute('role', 'menuitem');
    n.textContent = label;
    el.appendChild(n);
    actions.push({ node: n, fn });
  }
  function separator() {
    if (!actions.length) return;
    const s = document.createElement('div');
    s.className = 'glovebox-separator';
    el.appendChild(s);
  }
  let link = '';
  try {
    const u = new URL(String(m.link || ''));
    if (u.protocol === 'http:' || u.protocol === 'https:') link = u.href;
  } catch (e) { /* no link */ }
  if (link) {
    // From the click itself, so that the user's browser lets it open.
    item('Open link in new tab', () => window.open(link, '_blank', 'noopener,noreferrer'));
    item('Copy link address', () => navigator.clipboard.writeText(link).catch(() => {}));
    separator();
  }
  if (m.selection) item('Copy', () => send({ t: 'copy' }));
  if (m.image) item('Copy image', () => send({ t: 'copy-image', x: m.x, y: m.y }));
  if (m.editable && navigator.clipboard && navigator.clipboard.readText) {
    // The user's browser asks the user, the first time, whether this page may read the clipboard.
    item('Paste', () => navigator.clipboard.readText().then((text) => {
      if (text) send({ t: 'paste', text: text.slice(0, 4096) });
    }).catch(() => show('The browser did not let this page read the clipboard: paste with Ctrl+V.', 'toast')));
  }
  separator();
  item('Back', () => send({ t: 'nav', action: 'back' }));
  item('Forward', () => send({ t: 'nav', action: 'forward' }));
  item('Reload', () => send({ t: 'nav', action: 'reload' }));
  const r = rows(el, actions, (i) => {
    closePopup();
    actions[i].fn();
  });
  const p = fromRemote(m.x, m.y);
  place(el, p.x, p.y, p.y);
  popup = { el, keys: r.keys };
});

// Copy: the remote selection the user asked for, or what the remote page
// copied on the user's click (its Copy button), on the clipboard. The
// user's browser lets a page write it only soon after a click or a key:
// when the answer came too late, the next click or key here writes it,
// within 5 seconds, and never a paste (Ctrl/Cmd+V), which must paste what
// the user had.
const PENDING_COPY_MS = 5000;
let pendingCopy = null;
onMessage('copy', (m) => {
  if (typeof m.text !== 'string' || !m.text || !navigator.clipboard) return;
  pendingCopy = null;
  navigator.clipboard.writeText(m.text).catch(() => {
    pendingCopy = { text: m.text, at: performance.now() };
    show('Copied in the page: click anywhere or press a key to put it on your clipboard.', 'toast');
  });
});
// Copy image: the image's pixels, at a one-time URL of this origin, on
// the clipboard (the write starts now, within the menu click's activation,
// and waits for the image).
onMessage('copy-image', (m) => {
  const href = typeof m.url === 'string' ? sameOriginFile(m.url) : null;
  if (!href || !navigator.clipboard || !navigator.clipboard.write || typeof ClipboardItem !== 'function') return;
  const blob = fetch(href, { cache: 'no-store', credentials: 'omit' }).then((r) => {
    if (!r.ok) throw new Error('HTTP ' + r.status);
    return r.blob();
  }).then((b) => new Blob([b], { type: 'image/png' }));
  navigator.clipboard.write([new ClipboardItem({ 'image/png': blob })])
    .catch(() => show('The browser did not let this page put the image on the clipboard.', 'toast'));
});
for (const type of ['pointerdown', 'keydown']) {
  addEventListener(type, (ev) => {
    if (pendingCopy === null) return;
    const p = pendingCopy;
    pendingCopy = null;
    if (performance.now() - p.at > PENDING_COPY_MS) return;
    if (type === 'keydown' && (ev.ctrlKey || ev.metaKey) && String(ev.key).toLowerCase() === 'v') return;
    navigator.clipboard.writeText(p.text).catch(() => {});
  }, true);
}

// Fullscreen follows the remote page's: a video player's button makes
// this page fullscreen; leaving it here (Escape) leaves it there. The
// user's browser wants a gesture for it: the click that asked remotely
// is usually recent enough, and if not the next press on the video is.
let remoteFullscreen = false;
let fullscreenPending = false;
function enterFullscreen() {
  fullscreenPending = false;
  if (document.fullscreenElement || !document.documentElement.requestFullscreen) return;
  document.documentElement.requestFullscreen().catch(() => {
    fullscreenPending = true;
    show('The page went fullscreen: click it to follow.', 'toast');
  });
}
onMessage('fullscreen', (m) => {
  remoteFullscreen = m.on === true;
  if (remoteFullscreen) enterFullscreen();
  else {
    fullscreenPending = false;
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  }
});
video.addEventListener('mousedown', () => { if (fullscreenPending && remoteFullscreen) enterFullscreen(); });
document.addEventListener('fullscreenchange', () => {
  if (!document.fullscreenElement && remoteFullscreen) {
    remoteFullscreen = false;
    send({ t: 'fullscreen', on: false });
  }
});

// What policy stopped (a copy, a paste, typing on a read-only site).
onMessage('notice', (m) => { if (typeof m.message === 'string') show(m.message, 'toast'); });
