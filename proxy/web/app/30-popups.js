// Windows: a window the remote page opens (window.open, target=_blank) is
// a tab of its own at Glovebox; this page asks for a hand-over code for it
// and opens a landing page for it in a new window of the user's browser.
// When the browser blocks that window (no user activation left), the user
// is asked. A remote window.close() closes this window.
const popupQueue = [];
let popupEl = null;

function httpURL(u) {
  try {
    const url = new URL(u);
    return (url.protocol === 'http:' || url.protocol === 'https:') ? url : null;
  } catch (e) { return null; }
}

// popupTarget is where the new window goes: a landing page that claims
// the popup tab, or the URL itself when policy does not isolate it (the
// popup tab has then ended). Only http and https URLs are ever opened.
async function popupTarget(id, u) {
  const url = httpURL(u) || new URL(location.href);
  const j = await post('/tabs/' + token + '/popup', { id, url: url.href });
  if (j.navigate) {
    const nav = httpURL(j.navigate);
    if (!nav) throw new Error('Glovebox gave a URL that is not http or https');
    return nav.href;
  }
  return handoffURL(httpURL(j.url) || url, j.code);
}

// openWindow opens target, cutting the new window's link back to this page
// (whatever site its tab is handed to later). The window is still on its
// first about:blank, of this origin, so this works for a target of any.
function openWindow(target) {
  const w = window.open(target, '_blank');
  if (w) {
    try { w.opener = null; } catch (e) { /* gone already */ }
  }
  return w;
}

async function openPopup(m) {
  let target;
  try {
    target = await popupTarget(m.id, m.url);
  } catch (e) {
    show('This page opened a new window that could not be opened: ' + e.message, 'toast');
    return;
  }
  if (!openWindow(target)) {
    popupQueue.push(m);
    showBlocked();
  }
}

// showBlocked shows the first blocked window's prompt. Its Open button
// asks for a fresh code (the first may have expired while the user read),
// then opens the window within the click's activation.
function showBlocked() {
  if (popupEl || popupQueue.length === 0) return;
  const m = popupQueue[0];
  const done = () => {
    popupQueue.shift();
    popupEl = null;
    focusInput();
    showBlocked();
  };
  popupEl = askBox('glovebox-popup-blocked', [
    { id: 'glovebox-popup-text', text: 'This page opened a new window: ' + ((httpURL(m.url) || {}).href || location.href) },
    { className: 'glovebox-popup-hint', text: 'Your browser blocked it. Allow pop-ups for this site to open such windows at once.' },
  ], [
    { id: 'glovebox-popup-open', label: 'Open', fn: async () => {
      done();
      try {
        const w = openWindow(await popupTarget(m.id, m.url));
        if (!w) show('Your browser blocked the window again. Allow pop-ups for this site.', 'error');
      } catch (e) {
        show('The window could not be opened: ' + e.message, 'toast');
      }
    } },
    { id: 'glovebox-popup-dismiss', label: 'Dismiss', fn: () => {
      done();
      post('/tabs/' + token + '/popup', { id: m.id, dismiss: true }).catch(() => {});
    } },
  ]);
}

onMessage('popup', (m) => { openPopup(m); });
onMessage('popup-refused', (m) => show(m.message || 'This page tried to open a new window.', 'toast'));
// A window the remote page closed: this one was opened by script (a
// popup's landing page), so it may close; the first tab cannot, and says
// so when the tab's end arrives.
onMessage('close', () => { window.close(); });
