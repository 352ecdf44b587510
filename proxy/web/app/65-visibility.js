// Hidden tabs cost nothing: while this page cannot be seen (another tab in
// front, the window minimised, a phone's screen off) Glovebox stops the
// picture and, as tabs.hidden says, freezes the remote page; shown again,
// a fresh picture comes. Glovebox shows the tab to each new channel, so
// only a page that opens hidden (a background tab) says so at the start.
function sendVisibility() {
  send({ t: 'visible', on: document.visibilityState === 'visible' });
}
document.addEventListener('visibilitychange', sendVisibility);
openHandlers.push(() => {
  if (document.visibilityState !== 'visible') sendVisibility();
});
