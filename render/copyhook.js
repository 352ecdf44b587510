// Glovebox's hooks in the remote page's own world (render/agent.go
// installs them): what the page writes with the async Clipboard API
// (navigator.clipboard.writeText, write with text/plain) is told, once the
// write succeeded, as a DOM event that the agent in its isolated world
// hears; so is a window.print(), which headless Chromium shows no dialog for. The page
// can fire those events itself: the agent believes a copy only within the
// user's activation, as a local browser would let the page write the
// clipboard, and a print only asks the user, as a print dialog does.
(() => {
  const print = window.print;
  if (typeof print === 'function' && !print.__gloveboxHooked) {
    // Headless Chromium's own print() would hold the page as printing,
    // and Glovebox's print to PDF would then fail: it is not called.
    const hooked = function () {
      try { document.dispatchEvent(new CustomEvent('glovebox-remote-print')); } catch (e) { /* gone */ }
    };
    Object.defineProperty(hooked, '__gloveboxHooked', { value: true });
    window.print = hooked;
  }
})();
(() => {
  const C = globalThis.Clipboard && Clipboard.prototype;
  if (!C || C.__gloveboxHooked) return;
  const EVENT = 'glovebox-remote-copy';
  const tell = (text) => {
    try { document.dispatchEvent(new CustomEvent(EVENT, { detail: String(text) })); } catch (e) { /* gone */ }
  };
  const writeText = C.writeText;
  const write = C.write;
  Object.defineProperty(C, '__gloveboxHooked', { value: true });
  if (typeof writeText === 'function') {
    C.writeText = function (text) {
      const p = writeText.apply(this, arguments);
      p.then(() => tell(text), () => {});
      return p;
    };
  }
  if (typeof write === 'function') {
    C.write = function (items) {
      const p = write.apply(this, arguments);
      p.then(() => {
        for (const item of Array.from(items || [])) {
          if (item && item.types && item.types.includes('text/plain')) {
            item.getType('text/plain').then((b) => b.text()).then(tell, () => {});
            return;
          }
        }
      }, () => {});
      return p;
    };
  }
})();
