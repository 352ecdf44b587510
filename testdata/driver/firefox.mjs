// Drives Firefox ESR as the user's browser for Glovebox's tests: one JSON
// command per line on stdin, one JSON answer per line on stdout, in order.
//
//   {"op":"goto","url":"http://127.0.0.1:8000/"}
//   {"op":"eval","js":"document.title"}          -> {"ok":true,"value":...}
//   {"op":"click","x":100,"y":50}
//   {"op":"type","text":"Hello"}
//   {"op":"screenshot","path":"/tmp/x.png"}
//
// It is started with the proxy's address in GLOVEBOX_PROXY (host:port) and
// Firefox's path in FIREFOX; it launches Firefox headless, with Glovebox as
// its HTTP proxy for everything (loopback included) and WebRTC allowed on
// loopback, the only network the tests use.
import puppeteer from 'puppeteer-core';
import readline from 'node:readline';

const [proxyHost, proxyPort] = (process.env.GLOVEBOX_PROXY || '').split(':');
if (!proxyHost || !proxyPort) {
  console.error('GLOVEBOX_PROXY=host:port is required');
  process.exit(2);
}

const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
  headless: true,
  userDataDir: process.env.PROFILE || undefined,
  extraPrefsFirefox: {
    'network.proxy.type': 1,
    'network.proxy.http': proxyHost,
    'network.proxy.http_port': Number(proxyPort),
    'network.proxy.ssl': proxyHost,
    'network.proxy.ssl_port': Number(proxyPort),
    'network.proxy.no_proxies_on': '',
    'network.proxy.allow_hijacking_localhost': true,
    // WebRTC on loopback, with real addresses rather than mDNS names.
    'media.peerconnection.ice.loopback': true,
    'media.peerconnection.ice.obfuscate_host_addresses': false,
    // Firefox gathers ICE candidates only on the default route's address
    // for a page without camera or microphone permission (RFC 8828's mode
    // 2): that address is the machine's own, where the tests send nothing.
    // Permission lifts it, and loopback's is used.
    'permissions.default.camera': 1,
    'permissions.default.microphone': 1,
    'media.autoplay.default': 0,
    'media.autoplay.blocking_policy': 0,
    // Nothing in the background: it would only go to Glovebox, refused.
    'network.captive-portal-service.enabled': false,
    'network.connectivity-service.enabled': false,
    'browser.safebrowsing.malware.enabled': false,
    'browser.safebrowsing.phishing.enabled': false,
    'app.update.enabled': false,
    'extensions.update.enabled': false,
    'datareporting.policy.dataSubmissionEnabled': false,
    'network.dns.disablePrefetch': true,
    'network.prefetch-next': false,
  },
});
const [page] = await browser.pages();

async function run(cmd) {
  switch (cmd.op) {
    case 'goto':
      await page.goto(cmd.url, { waitUntil: 'load' });
      return null;
    case 'eval':
      // An expression, evaluated as the browser's own (not subject to the
      // page's CSP, which has no 'unsafe-eval').
      return await page.evaluate(cmd.js);
    case 'click':
      await page.mouse.click(cmd.x, cmd.y);
      return null;
    case 'type':
      await page.keyboard.type(cmd.text);
      return null;
    case 'screenshot':
      await page.screenshot({ path: cmd.path });
      return null;
    case 'version':
      return await browser.version();
    default:
      throw new Error('unknown op ' + cmd.op);
  }
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let answer;
  try {
    const cmd = JSON.parse(line);
    const value = await run(cmd);
    answer = { ok: true, value: value === undefined ? null : value };
  } catch (e) {
    answer = { ok: false, error: String(e && e.message || e) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
await browser.close();
