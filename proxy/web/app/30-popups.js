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
  const box = document.createElement('div');
  box.id = 'glovebox-popup-blocked';
  box.setAttribute('role', 'alertdialog');
  const text = document.createElement('p');
  text.id = 'glovebox-popup-text';
  text.textContent = 'This page opened a new window: ' + ((httpURL(m.url) || {}).href || location.href);
  const hint = document.createElement('p');
  hint.className = 'glovebox-popup-hint';
  hint.textContent = 'Your browser blocked it. Allow pop-ups for this site to open such windows at once.';
  const open = document.createElement('button');
  open.id = 'glovebox-popup-open';
  open.textContent = 'Open';
  const dismiss = document.createElement('button');
  dismiss.id = 'glovebox-popup-dismiss';
  dismiss.textContent = 'Dismiss';
  const done = () => {
    popupQueue.shift();
    box.remove();
    popupEl = null;
    focusInput();
    showBlocked();
  };
  open.addEventListener('click', async () => {
    done();
    try {
      const w = openWindow(await popupTarget(m.id, m.url));
      if (!w) show('Your browser blocked the window again. Allow pop-ups for this site.', 'error');
    } catch (e) {
      show('The window could not be opened: ' + e.message, 'toast');
    }
  });
  dismiss.addEventListener('click', () => {
    done();
    post('/tabs/' + token + '/popup', { id: m.id, dismiss: true }).catch(() => {});
  });
  box.append(text, hint, open, dismiss);
  document.body.append(box);
  popupEl = box;
  open.focus();
}

onMessage('popup', (m) => { openPopup(m); });
onMessage('popup-refused', (m) => show(m.message || 'This page tried to open a new window.', 'toast'));
// A window the remote page closed: this one was opened by script (a
// popup's landing page), so it may close; the first tab cannot, and says
// so when the tab's end arrives.
onMessage('close', () => { window.close(); });
