// The start, after every feature file has registered its handlers.
start().catch((e) => {
  ended = true;
  show(e.message || String(e), 'error');
});
focusInput();
