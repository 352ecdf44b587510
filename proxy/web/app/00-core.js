// Glovebox landing page: shows an isolated page as live video and sends the
// user's input back. It talks only to /.glovebox/ on its own origin.
//
// The script is the files of web/app/ in name order, in one strict-mode
// closure (pages.go bundles them): this one is the core; each feature file
// sees its names and registers with onMessage and onOpen.
const API = '/.glovebox/api';
const KEY = 'glovebox.tab';
const HANDOFF = 'glovebox-handoff';
const video = document.getElementById('glovebox-screen');
const statusEl = document.getElementById('glovebox-status');

// The id of the request that brought this page, sent with its calls so
// that the audit log names the tab it opened.
const requestID = (document.querySelector('meta[name="glovebox-request"]') || {}).content || '';

let token = null;
let pc = null;
let dc = null;
let ended = false;
let leaving = false;
let view = viewport();
let toastTimer = 0;

function show(msg, kind) {
  clearTimeout(toastTimer);
  statusEl.textContent = msg || '';
  statusEl.hidden = !msg;
  statusEl.className = kind || '';
  if (kind === 'toast') toastTimer = setTimeout(() => { statusEl.hidden = true; }, 4000);
}

// askBox shows a small question (id) over the page: its paragraphs
// ({ text, id, className }) and buttons ({ label, id, fn }). A button
// closes it and does its fn; the first one has the focus.
function askBox(id, paragraphs, buttons) {
  const box = document.createElement('div');
  box.id = id;
  box.setAttribute('role', 'alertdialog');
  for (const p of paragraphs) {
    const el = document.createElement('p');
    el.textContent = p.text;
    if (p.id) el.id = p.id;
    if (p.className) el.className = p.className;
    box.append(el);
  }
  for (const b of buttons) {
    const el = document.createElement('button');
    el.textContent = b.label;
    if (b.id) el.id = b.id;
    el.addEventListener('click', () => { box.remove(); b.fn(); });
    box.append(el);
  }
  document.body.append(box);
  const first = box.querySelector('button');
  if (first) first.focus();
  return box;
}

function viewport() {
  return { width: Math.round(window.innerWidth), height: Math.round(window.innerHeight), dpr: window.devicePixelRatio || 1 };
}

async function post(path, body) {
  const r = await fetch(API + path, {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Glovebox-Request': requestID },
    body: JSON.stringify(body || {}), cache: 'no-store', credentials: 'omit',
  });
  let j = {};
  try { j = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) {
    const err = new Error(j.message || ('Glovebox answered HTTP ' + r.status));
    err.code = j.error;
    throw err;
  }
  return j;
}

// A hand-over from a landing page at another origin carries a one-time
// code in the fragment; it is removed from the address bar at once.
function takeHandoffCode() {
  const h = location.hash;
  const i = h.indexOf(HANDOFF + '=');
  if (i < 0) return null;
  const params = new URLSearchParams(h.slice(1));
  const code = params.get(HANDOFF);
  const orig = params.get('h') || '';
  history.replaceState(history.state, '', location.href.split('#')[0] + orig);
  return code;
}

async function getTab() {
  const code = takeHandoffCode();
  if (code) {
    try { return await post('/claim', { code }); } catch (e) { /* expired: open a new tab */ }
  }
  const nav = performance.getEntriesByType('navigation')[0];
  const saved = sessionStorage.getItem(KEY);
  if (saved && nav && (nav.type === 'reload' || nav.type === 'back_forward')) {
    return { token: saved, reattach: true };
  }
  return post('/tabs', Object.assign({ url: location.href }, viewport()));
}

// newPeer makes a peer connection and its offer. The offer goes while
// the browser applies it, and without waiting for ICE gathering to
// complete (100–150 ms in Chromium) for nothing: Glovebox learns the
// browser's address from the browser's own connectivity checks (browsers
// hide their host candidates behind mDNS names, which it does not
// resolve anyway).
async function newPeer() {
  const p = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
  p.addTransceiver('video', { direction: 'recvonly' });
  // The remote page's sound (60-sound.js); Glovebox refuses it when
  // policy keeps the tab silent.
  p.addTransceiver('audio', { direction: 'recvonly' });
  const d = p.createDataChannel('glovebox', { ordered: true });
  const offer = await p.createOffer();
  const applied = p.setLocalDescription(offer);
  applied.catch(() => {}); // connect awaits it
  return { p, d, sdp: offer.sdp, applied };
}

async function connect(tab, peer) {
  token = tab.token;
  sessionStorage.setItem(KEY, token);
  if (tab.width) view = { width: tab.width, height: tab.height, dpr: tab.dpr };
  const { p, d, sdp, applied } = await peer;
  pc = p;
  dc = d;
  pending.length = 0;
  dc.onopen = () => {
    sendResize();
    for (const fn of openHandlers) fn();
    // What the user did while the channel opened (the picture can come
    // first) reaches the page now, in order.
    for (const m of pending.splice(0)) send(m);
  };
  dc.onmessage = (e) => onServerMessage(e.data);
  // Video and sound in one stream on one element, so that they play in
  // step (Glovebox sends them as one stream too).
  const media = new MediaStream();
  pc.ontrack = (e) => {
    media.addTrack(e.track);
    if (video.srcObject !== media) video.srcObject = media;
    video.play().catch(() => {});
    for (const fn of trackHandlers) fn(e.track);
  };
  pc.onconnectionstatechange = () => {
    if (!ended && !leaving && pc.connectionState === 'failed') {
      show('The connection to the isolated browser was lost. Reload the page to reconnect.', 'error');
    }
  };
  const ans = await post('/tabs/' + token + '/offer', { sdp });
  await applied;
  await pc.setRemoteDescription({ type: 'answer', sdp: ans.sdp });
}

// start asks for the tab and sets up the peer connection while Glovebox
// starts it: a page's first RTCPeerConnection takes tens of milliseconds.
// That work waits for the load event, which this page fires at once: it
// would hold it up, and with it the browser's page-loading state.
async function start() {
  const tabReq = getTab();
  const peer = new Promise((resolve) => window.addEventListener('load', resolve, { once: true })).then(newPeer);
  peer.catch(() => {}); // connect reports it
  let tab;
  try {
    tab = await tabReq;
  } catch (e) {
    peer.then((x) => x.p.close(), () => {});
    throw e;
  }
  try {
    await connect(tab, peer);
  } catch (e) {
    if (!tab.reattach || (e.code !== 'no_tab' && e.code !== 'ended')) throw e;
    // The tab this page had is gone: open a fresh one.
    sessionStorage.removeItem(KEY);
    if (pc) pc.close();
    tab = await post('/tabs', Object.assign({ url: location.href }, viewport()));
    await connect(tab, newPeer());
  }
}

video.addEventListener('playing', () => show(''));

// pending holds input sent while the data channel opens: a click on the
// first picture is not lost. It is bounded; past it the oldest goes.
const pending = [];
const PENDING_MAX = 256;

function send(m) {
  if (dc && dc.readyState === 'open') {
    dc.send(JSON.stringify(m));
  } else if (dc && dc.readyState === 'connecting' && m.t !== 'resize') {
    if (pending.push(m) > PENDING_MAX) pending.shift();
  }
}

// The remote viewport follows the window, within the server's caps: view
// changes when the server says which viewport it applied.
function sendResize() {
  const v = viewport();
  send({ t: 'resize', width: v.width, height: v.height, dpr: v.dpr, touch: navigator.maxTouchPoints || 0 });
}

// Feature files register for the server's message types and for the data
// channel's opening (each attach: first load, reload, hand-over).
const messageHandlers = {};
const openHandlers = [];
const trackHandlers = [];
function onMessage(type, fn) { messageHandlers[type] = fn; }
// onTrack(fn) runs fn(track) for each media track the peer receives.
function onTrack(fn) { trackHandlers.push(fn); }
function onOpen(fn) { openHandlers.push(fn); }

function onServerMessage(data) {
  let m;
  try { m = JSON.parse(data); } catch (e) { return; }
  switch (m.t) {
    case 'url':
      if (messageHandlers.url) messageHandlers.url(m); else followURL(m.url);
      break;
    case 'title': document.title = m.title || location.host; break;
    case 'viewport':
      if (m.width > 0 && m.height > 0) view = { width: m.width, height: m.height, dpr: m.dpr || 1 };
      break;
    case 'error': console.warn('glovebox:', m.message); break;
    default:
    if (messageHandlers[m.t]) messageHandlers[m.t](m);
    break;
  case 'ended':
      ended = true;
      sessionStorage.removeItem(KEY);
      show(m.message || ('This isolated tab has ended (' + (m.reason || 'closed') + '). Reload the page to open it again.'), 'error');
      if (pc) pc.close();
      break;
  }
}

// followURL keeps the address bar true: same origin by the History API,
// another origin by handing the live tab to a landing page there, which
// takes this page's history entry when replace is set.
async function followURL(u, replace) {
  let url;
  try { url = new URL(u); } catch (e) { return; }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return;
  if (url.origin === location.origin) {
    if (url.href !== location.href) history.replaceState(history.state, '', url.href);
    return;
  }
  try {
    const j = await post('/tabs/' + token + '/handoff', { url: url.href });
    leaving = true;
    if (j.navigate) {
      // Not isolated: the tab has ended, and the browser goes there
      // itself, with no code in the URL for that site to read.
      sessionStorage.removeItem(KEY);
      if (replace) location.replace(j.navigate); else location.assign(j.navigate);
      return;
    }
    if (replace) location.replace(handoffURL(url, j.code));
    else location.assign(handoffURL(url, j.code));
  } catch (e) {
    console.warn('glovebox: hand-over failed:', e.message);
  }
}

// handoffURL is the landing page at url that claims a tab with code; the
// code rides in the fragment, which no server sees.
function handoffURL(url, code) {
  url = new URL(url);
  const orig = url.hash;
  url.hash = '';
  const params = new URLSearchParams();
  params.set(HANDOFF, code);
  if (orig) params.set('h', orig);
  return url.href + '#' + params.toString();
}

// Input: coordinates are CSS pixels of the remote viewport.
function toRemote(ev) {
  const r = video.getBoundingClientRect();
  const vw = video.videoWidth || view.width * view.dpr;
  const vh = video.videoHeight || view.height * view.dpr;
  const s = Math.min(r.width / vw, r.height / vh) || 1;
  return { x: (ev.clientX - r.left) / (vw * s) * view.width, y: (ev.clientY - r.top) / (vh * s) * view.height };
}

function mods(ev) {
  return (ev.altKey ? 1 : 0) | (ev.ctrlKey ? 2 : 0) | (ev.metaKey ? 4 : 0) | (ev.shiftKey ? 8 : 0);
}

const BUTTONS = ['left', 'middle', 'right', 'back', 'forward'];
// The DOM buttons bits, in the order in which a move with several held
// names one (render does the same).
const HELD = [[1, 'left'], [2, 'right'], [4, 'middle'], [8, 'back'], [16, 'forward']];
function heldButton(buttons) {
  for (const [bit, name] of HELD) if (buttons & bit) return name;
  return 'none';
}

// held is the buttons pressed on the video and not yet released: while
// one is, moves and the release go to the remote page wherever the
// pointer is (a drag may leave the video), else only those over the video.
let held = 0;

function mouse(type) {
  return (ev) => {
    if (ev.target !== video && !(held && type !== 'down')) return;
    const p = toRemote(ev);
    const m = { t: 'mouse', type, x: p.x, y: p.y, buttons: ev.buttons, mods: mods(ev) };
    if (type === 'move') {
      // Chromium drags only when a move names the button held.
      m.button = heldButton(ev.buttons);
      if (!ev.buttons) held = 0; // released where this page could not see it
    } else {
      m.button = BUTTONS[ev.button] || 'none';
      m.clicks = Math.min(ev.detail || 1, 5);
      held = type === 'down' ? held | ev.buttons : ev.buttons & held;
      ev.preventDefault();
      focusInput(ev);
    }
    send(m);
  };
}
window.addEventListener('mousemove', mouse('move'));
video.addEventListener('mousedown', mouse('down'));
window.addEventListener('mouseup', mouse('up'));
video.addEventListener('contextmenu', (ev) => ev.preventDefault());
video.addEventListener('wheel', (ev) => {
  ev.preventDefault();
  const k = ev.deltaMode === 1 ? 40 : ev.deltaMode === 2 ? view.height : 1;
  const p = toRemote(ev);
  send({ t: 'wheel', x: p.x, y: p.y, dx: ev.deltaX * k, dy: ev.deltaY * k, mods: mods(ev) });
}, { passive: false });

let resizeTimer = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(sendResize, 150);
});

window.addEventListener('pagehide', () => {
  if (token && !ended) navigator.sendBeacon(API + '/tabs/' + token + '/detach', '');
  if (pc) pc.close();
});
