// History: the user's session history mirrors the remote tab's. A remote
// navigation that adds an entry (a link, a form, pushState, a fragment) adds
// one here with history.pushState, its state naming the remote entry; the
// user's Back and Forward (popstate) move the remote tab to the entry they
// land on; the remote page's own history.go takes the same steps here.
// Entries at another origin belong to the landing page there: the hand-over
// makes them, and going back to one loads that page, which reattaches and
// asks for its entry. A reload of this page reloads the remote page.
const loadType = (performance.getEntriesByType('navigation')[0] || {}).type || 'navigate';
// The token this page had before it loaded: the same token after the
// attach means the same remote tab, whose history these entries mirror.
const priorToken = sessionStorage.getItem(KEY);

// here is the remote entry ({tab, entry, index}) that the local entry stands
// for, or will once the history.go steps asked for are taken. Entries of
// another remote tab (one that ended before this page opened a new one)
// name nothing in this tab's history.
let here = (history.state && history.state.glovebox) || null;
// current is the remote tab's entry as last reported.
let current = null;
// wanted is the entry the user went to that the remote tab has not reached
// yet: reports of the entries it passes on its way move nothing here.
let wanted = 0;
// arrived: this page was loaded by Back or Forward to an entry of the tab,
// which is asked for once the first report says the tab is the same.
let arrived = loadType === 'back_forward' && here !== null;
let reloadWanted = loadType === 'reload';
// steps counts the popstate events of history.go calls made to follow the
// remote page: those are not the user's and are not sent back.
let steps = 0;
let attachedOnce = false;

function entryState(m) {
  return { glovebox: { tab: m.tab, entry: m.entry, index: m.index } };
}

// startAfresh loads this entry's URL in a new remote tab: the entry is
// one of a tab that has ended (this page opened another since), which
// has nothing to go back to. A local tab would load the page anew too.
function startAfresh() {
  leaving = true;
  sessionStorage.removeItem(KEY);
  location.reload();
}

function goToEntry(entry) {
  wanted = entry;
  send({ t: 'nav', action: 'entry', entry });
}

onMessage('url', (m) => {
  if (!m.entry || typeof m.index !== 'number') { followURL(m.url); return; }
  let url;
  try { url = new URL(m.url); } catch (e) { return; }
  // The remote tab's own pages (about:blank before the first load) have no
  // place in the user's history.
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return;
  current = m;
  if (arrived) {
    arrived = false;
    if (here && here.tab !== m.tab) { startAfresh(); return; }
    if (here && here.entry !== m.entry) { goToEntry(here.entry); return; }
  }
  if (here && here.tab !== m.tab) here = null; // a new tab takes the old one's place
  if (wanted && !m.settled && m.entry !== wanted && !m.push) return;
  wanted = 0;
  const state = entryState(m);
  if (here && !m.push && m.entry !== here.entry && m.index !== here.index) {
    // The remote page moved in its history (history.back(), the context
    // menu's Back): the same steps here. At another origin the entry's
    // own landing page takes the tab back.
    const delta = m.index - here.index;
    here = state.glovebox;
    steps++;
    history.go(delta);
    return;
  }
  const push = m.push && here !== null;
  if (url.origin !== location.origin) {
    // A new entry at another origin is a new local one there; anything
    // else (a redirect, a replaced entry) takes this one's place.
    followURL(url.href, !push);
    return;
  }
  here = state.glovebox;
  if (push) history.pushState(state, '', url.href);
  else history.replaceState(state, '', url.href);
});

window.addEventListener('popstate', (ev) => {
  if (steps > 0) { steps--; return; }
  const st = ev.state && ev.state.glovebox;
  if (!st || !current) return;
  if (st.tab !== current.tab) { startAfresh(); return; }
  here = st;
  if (st.entry !== current.entry) goToEntry(st.entry);
});

// On the first attach after a reload to the tab this page had, the remote
// page reloads too; a tab opened afresh has nothing to do, and the entries
// of the one before are not its own.
onOpen(() => {
  if (attachedOnce) return;
  attachedOnce = true;
  if (!priorToken || token !== priorToken) {
    here = null;
    arrived = false;
    return;
  }
  if (reloadWanted) send({ t: 'nav', action: 'reload' });
  reloadWanted = false;
});
