#!/usr/bin/env node
// End-to-end check: hls.js (or shaka) in headless Chromium plays a stream: a VOD to
// the end, or a live stream for --live-s seconds.
//
//   node play.mjs <master-url-with-token> [--timeout-s N] [--rate R] [--all-levels]
//                 [--player hlsjs|shaka] [--credentials] [--append-token]
//                 [--live-s N] [--page-host NAME --page-port P]
//                 [--cat-header NAME=TOKEN] [--cat-cookie NAME=TOKEN]
//
// 1. Serves a tiny page (and hls.js, shaka-player from node_modules/) from
//    http://127.0.0.1:<random port>. That origin differs from the media URL's,
//    so every playlist and segment request hls.js makes is cross-origin (CORS).
// 2. Launches Debian's Chromium (/usr/bin/chromium, or $E2E_CHROMIUM) headless
//    through playwright-core, with a fresh profile.
// 3. The page plays the URL with hls.js in a muted <video> at --rate (default
//    4x), and records hls.js events, ERROR events and the video's `ended`;
//    Playwright records every request the page made and its HTTP status.
//
// Success: the video fired `ended` (or currentTime >= duration - 0.5), no fatal
// hls.js error, no media-element error, no media response with status >= 400,
// no media request that failed at the network level (CORS, refused, TLS...),
// and at least one fragment loaded.
//
// --all-levels  step hls.nextLevel through every variant so each rendition's
//               playlist and at least one of its fragments are fetched.
// --player      hlsjs (default) or shaka (shaka-player; plays HLS or DASH).
// --credentials send cookies cross-site: hls.js `xhr.withCredentials = true`,
//               shaka `request.allowCrossSiteCredentials = true` (cookie mode).
// --append-token  the page appends the URL's own `token=` to every request it
//               makes (hls.js xhrSetup), as pages commonly do: beside a renewed
//               token the gate put in a child URL, the original one rides along.
// --live-s N    a live stream: success is N seconds of playback (at rate 1)
//               with every request answered, instead of reaching the end.
// --page-host NAME, --page-port P  serve the page as http://NAME:P (default
//               127.0.0.1 on a random port). Names ending in .test resolve to
//               127.0.0.1 inside Chromium (--host-resolver-rules), so a page on
//               page.test and media on media.test are different *sites*: the
//               media's cookies are third-party cookies to the page.
// --cat-header NAME=TOKEN  (shaka) a Common Access Token in a request header: a
//               request filter (shaka's documented networking hook) puts TOKEN in
//               NAME on a request that has none; shaka's own CAT support
//               (`networking.commonAccessTokenHeaderName`, set to NAME) then sends the
//               renewed token each response carries in that header (`catr` type 2).
// --cat-cookie NAME=TOKEN  a Common Access Token in a cookie: the page sets it for its
//               own host (path /) before the player starts; cookies ignore ports, so
//               media on that host on another port gets it with --credentials, and the
//               gate's renewed `Set-Cookie` (`catr` type 1) replaces it.
// Env: E2E_INSECURE=1  add --ignore-certificate-errors (self-signed / dev CA)
//      E2E_CHROMIUM    browser binary (default /usr/bin/chromium)
//
// Prints one JSON summary line on stdout (token values redacted: token=…).
// On failure the error events and failing URLs are also printed on stderr.
// Exit: 0 success, 1 playback failure (incl. timeout), 2 harness error.
// The browser and the page server are always closed, bounded by the timeout.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const HLS_JS = join(here, 'node_modules', 'hls.js', 'dist', 'hls.min.js');
const HLS_PKG = join(here, 'node_modules', 'hls.js', 'package.json');
const SHAKA_JS = join(here, 'node_modules', 'shaka-player', 'dist', 'shaka-player.compiled.js');
const SHAKA_PKG = join(here, 'node_modules', 'shaka-player', 'package.json');
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const INSECURE = process.env.E2E_INSECURE === '1';
const t0 = Date.now();

// ---------------------------------------------------------------- utilities

/** Replace the value of every `token=` query parameter with an ellipsis. */
function redact(s) {
  return String(s ?? '').replace(/([?&;](?:token|CAT)=)[^&#\s"']*/gi, '$1…');
}

function log(msg) {
  process.stderr.write(`e2e-hlsjs: ${redact(msg)}\n`);
}

class HarnessError extends Error {}

function usage(msg) {
  if (msg) log(msg);
  process.stderr.write(
    'usage: node play.mjs <master-url-with-token> [--timeout-s N] [--rate R] [--all-levels]\n' +
    '       [--player hlsjs|shaka] [--credentials] [--append-token] [--live-s N]\n' +
    '       [--page-host NAME --page-port P] [--cat-header NAME=TOKEN] [--cat-cookie NAME=TOKEN]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    url: null, timeoutS: 60, rate: 4, allLevels: false, player: 'hlsjs',
    credentials: false, appendToken: false, liveS: 0, pageHost: '127.0.0.1', pagePort: 0,
    catHeader: null, catCookie: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (name) => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) usage(`${name} needs a positive number`);
      return v;
    };
    const pair = (name) => {
      const v = argv[++i] || '';
      const at = v.indexOf('=');
      if (at < 1) usage(`${name} needs NAME=TOKEN`);
      return { name: v.slice(0, at), value: v.slice(at + 1) };
    };
    if (a === '--timeout-s') opts.timeoutS = num(a);
    else if (a === '--rate') opts.rate = num(a);
    else if (a === '--all-levels') opts.allLevels = true;
    else if (a === '--credentials') opts.credentials = true;
    else if (a === '--append-token') opts.appendToken = true;
    else if (a === '--live-s') opts.liveS = num(a);
    else if (a === '--page-port') opts.pagePort = num(a);
    else if (a === '--page-host') opts.pageHost = argv[++i] || usage('--page-host needs a name');
    else if (a === '--cat-header') opts.catHeader = pair(a);
    else if (a === '--cat-cookie') opts.catCookie = pair(a);
    else if (a === '--player') {
      opts.player = argv[++i];
      if (!['hlsjs', 'shaka'].includes(opts.player)) usage('--player is hlsjs or shaka');
    }
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (opts.url === null) opts.url = a;
    else usage(`unexpected argument ${redact(a)}`);
  }
  if (!opts.url) usage('missing <master-url-with-token>');
  let u;
  try { u = new URL(opts.url); } catch { usage(`not a URL: ${redact(opts.url)}`); }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') usage('URL must be http(s)');
  opts.mediaOrigin = u.origin;
  opts.token = u.searchParams.get('token');
  if (opts.appendToken && !opts.token) usage('--append-token needs a ?token= in the URL');
  if (opts.appendToken && opts.player !== 'hlsjs') usage('--append-token is an hls.js run');
  if (opts.catHeader && opts.player !== 'shaka') usage('--cat-header is a shaka run');
  if (opts.catCookie && !opts.credentials) usage('--cat-cookie needs --credentials');
  return opts;
}

// ------------------------------------------------------------ the page

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>tollgate e2e hls.js</title>
<link rel="icon" href="data:,">
<script src="/hls.min.js"></script><script src="/shaka.js"></script></head>
<body><video id="v" muted playsinline autoplay width="320" height="180"></video>
<script>
'use strict';
const S = window.__e2e = {
  done: false, outcome: null, ended: false, nearEnd: false,
  duration: null, currentTime: null, playError: null, mediaError: null,
  hlsErrors: [], levelsInManifest: null, codecs: [], levelsLoaded: [],
  levelsWithFrags: [], fragsLoaded: 0, fragsBuffered: 0, levelSwitches: [],
  events: [], live: null,
};
// A live run: done once liveS seconds have passed since playback started.
function watchLive(v, liveS) {
  let t0 = null, c0 = 0;
  v.addEventListener('timeupdate', () => {
    if (t0 === null) { t0 = performance.now(); c0 = v.currentTime; return; }
    const wall = (performance.now() - t0) / 1000;
    S.live = { wall, media: v.currentTime - c0 };
    if (wall >= liveS) finish('played');
  });
}
// The video element's events, for either player.
function watchVideo(v, rate, o) {
  v.addEventListener('playing', () => { v.playbackRate = rate; });
  v.addEventListener('ended', () => { S.ended = true; finish('ended'); });
  v.addEventListener('error', () => {
    S.mediaError = v.error ? { code: v.error.code, message: v.error.message } : { code: null };
    finish('media-error');
  });
  v.addEventListener('timeupdate', () => { S.currentTime = v.currentTime; if (!o.liveS) reached(v); });
  if (o.liveS) watchLive(v, o.liveS);
}
function reached(v) {
  if (Number.isFinite(v.duration) && v.duration > 0) {
    S.duration = v.duration;
    if (!S.nearEnd && v.currentTime >= v.duration - 0.5) {
      S.nearEnd = true;
      // Prefer the real 'ended'; accept the near-end position if it never comes.
      setTimeout(() => finish('near-end'), 3000);
    }
  }
}
function finish(outcome) {
  if (S.done) return;
  const v = document.getElementById('v');
  S.duration = Number.isFinite(v.duration) ? v.duration : null;
  S.currentTime = v.currentTime;
  S.outcome = outcome; S.done = true;
}
function addUniq(arr, x) { if (!arr.includes(x)) arr.push(x); }
window.__probe = () => ({
  hlsSupported: typeof Hls !== 'undefined' && Hls.isSupported(),
  hlsVersion: typeof Hls !== 'undefined' ? Hls.version : null,
  mse: typeof MediaSource !== 'undefined',
  h264_aac_mp4: typeof MediaSource !== 'undefined' &&
    MediaSource.isTypeSupported('video/mp4; codecs="avc1.64001f,mp4a.40.2"'),
  h264_main_mp4: typeof MediaSource !== 'undefined' &&
    MediaSource.isTypeSupported('video/mp4; codecs="avc1.4d401e"'),
  h264_baseline_mp4: typeof MediaSource !== 'undefined' &&
    MediaSource.isTypeSupported('video/mp4; codecs="avc1.42c00c"'),
  aac_mp4: typeof MediaSource !== 'undefined' &&
    MediaSource.isTypeSupported('audio/mp4; codecs="mp4a.40.2"'),
  userAgent: navigator.userAgent,
});
window.__startShaka = async (src, rate, o) => {
  const v = document.getElementById('v');
  shaka.polyfill.installAll();
  const player = new shaka.Player();
  await player.attach(v);
  const net = player.getNetworkingEngine();
  const SEGMENT = shaka.net.NetworkingEngine.RequestType.SEGMENT;
  if (o.credentials) net.registerRequestFilter((_, req) => { req.allowCrossSiteCredentials = true; });
  if (o.catHeader) {
    // The first request's CAT; later ones carry what shaka learned from the responses.
    const name = o.catHeader.name.toLowerCase();
    player.configure('networking.commonAccessTokenHeaderName', name);
    net.registerRequestFilter((_, req) => { if (!(name in req.headers)) req.headers[name] = o.catHeader.value; });
  }
  net.registerResponseFilter((type) => { if (type === SEGMENT) S.fragsLoaded++; });
  player.addEventListener('error', (e) => {
    const d = e.detail || {};
    S.hlsErrors.push({ type: 'shaka', details: String(d.code), fatal: d.severity === 2,
      code: d.data && typeof d.data[1] === 'number' ? d.data[1] : null,
      url: d.data && typeof d.data[0] === 'string' ? d.data[0] : null, reason: null,
      t: Math.round(performance.now()) });
    if (d.severity === 2) finish('fatal-shaka-error');
  });
  watchVideo(v, rate, o);
  try {
    await player.load(src);
    S.levelsInManifest = player.getVariantTracks().length;
    const p = v.play();
    if (p && p.catch) p.catch((e) => { S.playError = String(e); });
  } catch (e) {
    S.hlsErrors.push({ type: 'shaka', details: String(e.code || e), fatal: true, code: null,
      url: null, reason: String(e.message || ''), t: Math.round(performance.now()) });
    finish('fatal-shaka-error');
  }
};
window.__start = (src, rate, allLevels, o) => {
  const v = document.getElementById('v');
  const config = { debug: false };
  if (o.credentials || o.appendToken) {
    config.xhrSetup = (xhr, url) => {
      if (o.appendToken) {
        // What pages do: the page's own token on every request, whatever the URL has.
        xhr.open('GET', url + (url.includes('?') ? '&' : '?') + 'token=' + o.token, true);
      }
      if (o.credentials) xhr.withCredentials = true;
    };
  }
  const hls = window.__hls = new Hls(config);
  const E = Hls.Events;
  hls.on(E.MANIFEST_PARSED, (_, d) => {
    S.levelsInManifest = d.levels.length;
    S.codecs = d.levels.map((l) => [l.videoCodec, l.audioCodec].filter(Boolean).join(','));
    if (allLevels) hls.startLevel = 0;
    const p = v.play();
    if (p && p.catch) p.catch((e) => { S.playError = String(e); });
  });
  hls.on(E.LEVEL_LOADED, (_, d) => addUniq(S.levelsLoaded, d.level));
  hls.on(E.LEVEL_SWITCHED, (_, d) => S.levelSwitches.push(d.level));
  hls.on(E.FRAG_LOADED, (_, d) => {
    S.fragsLoaded++;
    if (d.frag.type === 'main') addUniq(S.levelsWithFrags, d.frag.level);
  });
  hls.on(E.FRAG_BUFFERED, (_, d) => {
    S.fragsBuffered++;
    if (allLevels && d.frag.type === 'main') {
      // Walk through the variants: next fragment from a level not yet used.
      const n = hls.levels.length;
      for (let k = 1; k <= n; k++) {
        const l = (d.frag.level + k) % n;
        if (!S.levelsWithFrags.includes(l)) { hls.nextLevel = l; break; }
      }
    }
  });
  hls.on(E.ERROR, (_, d) => {
    S.hlsErrors.push({
      type: d.type, details: d.details, fatal: !!d.fatal,
      code: d.response ? d.response.code : null,
      url: (d.frag && d.frag.url) || (d.context && d.context.url) || d.url || null,
      reason: d.reason || (d.error ? String(d.error.message || d.error) : null),
      t: Math.round(performance.now()),
    });
    if (d.fatal) finish('fatal-hls-error');
  });
  watchVideo(v, rate, o);
  hls.attachMedia(v);
  hls.loadSource(src);
};
</script></body></html>
`;

function startPageServer(port) {
  return new Promise((resolve, reject) => {
    const srv = createServer(async (req, res) => {
      const path = (req.url || '/').split('?')[0];
      try {
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          res.writeHead(405).end();
        } else if (path === '/' || path === '/index.html') {
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
          res.end(PAGE);
        } else if (path === '/hls.min.js' || path === '/shaka.js') {
          const body = await readFile(path === '/shaka.js' ? SHAKA_JS : HLS_JS);
          res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
          res.end(body);
        } else {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        }
      } catch (e) {
        res.writeHead(500).end(String(e));
      }
    });
    srv.keepAliveTimeout = 1000;
    srv.on('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

function closeServer(srv) {
  return new Promise((resolve) => {
    if (!srv) return resolve();
    srv.close(() => resolve());
    srv.closeAllConnections?.();
  });
}

// ------------------------------------------------------------- main

async function main(opts) {
  const deadline = t0 + opts.timeoutS * 1000;
  const remaining = () => Math.max(0, deadline - Date.now());

  let hlsVersion = null;
  let shakaVersion = null;
  try {
    hlsVersion = JSON.parse(await readFile(HLS_PKG, 'utf8')).version;
    await readFile(HLS_JS);
    shakaVersion = JSON.parse(await readFile(SHAKA_PKG, 'utf8')).version;
    await readFile(SHAKA_JS);
  } catch {
    throw new HarnessError(`hls.js or shaka-player missing under ${here}/node_modules (run npm ci there)`);
  }
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    throw new HarnessError(`playwright-core missing (run npm ci in ${here}): ${e.message}`);
  }

  const state = {
    server: null, browser: null,
    requests: [],          // {method, url, status|null, failure|null, resourceType}
    consoleErrors: [],
    pageErrors: [],
  };
  let summary = null;

  // Bounded cleanup: never hang on close.
  const cleanup = async () => {
    const b = state.browser; state.browser = null;
    const s = state.server; state.server = null;
    await Promise.race([
      Promise.allSettled([b?.close(), closeServer(s)]),
      new Promise((r) => setTimeout(r, 10000).unref()),
    ]);
  };
  const onSignal = (sig) => {
    log(`caught ${sig}, closing browser and server`);
    cleanup().finally(() => process.exit(2));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    state.server = await startPageServer(opts.pagePort);
    const pageOrigin = `http://${opts.pageHost}:${state.server.address().port}`;
    if (pageOrigin === opts.mediaOrigin) throw new HarnessError('page and media origins coincide');

    const args = [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ];
    if (INSECURE) args.push('--ignore-certificate-errors');
    // page.test, media.test: loopback names on different sites (see --page-host).
    args.push('--host-resolver-rules=MAP *.test 127.0.0.1');
    try {
      state.browser = await chromium.launch({
        executablePath: CHROMIUM, headless: true, args,
        timeout: Math.min(30000, Math.max(1000, remaining())),
      });
    } catch (e) {
      throw new HarnessError(`cannot launch ${CHROMIUM}: ${e.message.split('\n')[0]}`);
    }
    const browserVersion = state.browser.version();
    const context = await state.browser.newContext({ ignoreHTTPSErrors: INSECURE });
    const page = await context.newPage();

    // Node-side fail-fast: a media response >= 400 or a failed media request
    // ends the run (hls.js would otherwise retry with back-off for a long time).
    let failFast = null;
    const failFastP = new Promise((resolve) => { failFast = resolve; });
    const entryOf = new WeakMap();
    const isPageAsset = (url) => url.startsWith(pageOrigin + '/') || /^(data|blob):/.test(url);
    page.on('response', (resp) => {
      const req = resp.request();
      const url = resp.url();
      if (isPageAsset(url)) return;
      const h = resp.headers();
      const entry = {
        method: req.method(), url, status: resp.status(), failure: null,
        acao: h['access-control-allow-origin'] ?? null, type: req.resourceType(),
      };
      state.requests.push(entry);
      entryOf.set(req, entry);
      if (entry.status >= 400) setTimeout(() => failFast(`HTTP ${entry.status}`), 500);
    });
    page.on('requestfailed', (req) => {
      const url = req.url();
      if (isPageAsset(url)) return;
      const failure = req.failure()?.errorText || 'failed';
      let entry = entryOf.get(req);
      if (entry) entry.failure = failure;
      else {
        entry = { method: req.method(), url, status: null, failure, acao: null, type: req.resourceType() };
        state.requests.push(entry);
      }
      // hls.js aborts loads itself (ABR switches, teardown): not a failure.
      if (failure !== 'net::ERR_ABORTED') setTimeout(() => failFast(`request failed: ${failure}`), 500);
    });
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') {
        state.consoleErrors.push(`${m.type()}: ${m.text()}`.slice(0, 500));
      }
    });
    page.on('pageerror', (e) => state.pageErrors.push(String(e.message || e).slice(0, 500)));

    await page.goto(pageOrigin + '/', { waitUntil: 'load', timeout: Math.max(1000, remaining()) });
    const probe = await page.evaluate(() => window.__probe());
    if (!probe.mse || !probe.hlsSupported) {
      throw new HarnessError(`this Chromium has no usable MediaSource (hls.js isSupported=false); probe=${JSON.stringify(probe)}`);
    }

    const o = { credentials: opts.credentials, appendToken: opts.appendToken, token: opts.token, liveS: opts.liveS, catHeader: opts.catHeader };
    if (opts.catCookie) {
      await page.evaluate((c) => { document.cookie = `${c.name}=${c.value}; path=/`; }, opts.catCookie);
    }
    const rate = opts.liveS ? 1 : opts.rate;
    if (opts.player === 'shaka') {
      await page.evaluate(([src, r, o]) => { window.__startShaka(src, r, o); }, [opts.url, rate, o]);
    } else {
      await page.evaluate(([src, r, all, o]) => window.__start(src, r, all, o), [opts.url, rate, opts.allLevels, o]);
    }

    let timer;
    const timeoutP = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), remaining()); });
    const pageDoneP = page
      .waitForFunction(() => window.__e2e.done, null, { polling: 100, timeout: 0 })
      .then(() => 'page-done', (e) => `page-wait-error: ${e.message.split('\n')[0]}`);
    const stop = await Promise.race([pageDoneP, failFastP, timeoutP]);
    clearTimeout(timer);

    const S = await page.evaluate(() => {
      const v = document.getElementById('v');
      const s = window.__e2e;
      if (!s.done) {
        s.duration = Number.isFinite(v.duration) ? v.duration : null;
        s.currentTime = v.currentTime;
      }
      return s;
    });

    // ------------------------------------------------------------ verdict
    const mediaReqs = state.requests;
    const bad = mediaReqs.filter((r) => (r.status !== null && r.status >= 400) ||
      (r.failure && r.failure !== 'net::ERR_ABORTED'));
    const fatal = S.hlsErrors.filter((e) => e.fatal);
    const isPlaylist = (u) => /\.(m3u8?|mpd)$/i.test(new URL(u).pathname);
    const fragReqs = mediaReqs.filter((r) => !isPlaylist(r.url));
    const playlistReqs = mediaReqs.filter((r) => isPlaylist(r.url));
    const reachedEnd = S.ended || (S.duration > 0 && S.currentTime >= S.duration - 0.5);
    // Live: the whole time played, and the media time kept up with it (no long stall).
    const playedLive = S.outcome === 'played' && S.live && S.live.media >= opts.liveS * 0.75;

    const reasons = [];
    if (opts.liveS) {
      if (!playedLive) reasons.push(`live: did not play ${opts.liveS}s (${JSON.stringify(S.live)}, stop ${stop})`);
    } else if (!reachedEnd) reasons.push(stop === 'timeout' ? `timeout after ${opts.timeoutS}s before the end` : 'did not reach the end');
    if (fatal.length) reasons.push(`fatal hls.js error: ${fatal.map((e) => e.details).join(', ')}`);
    if (S.mediaError) reasons.push(`media element error code ${S.mediaError.code} ${S.mediaError.message || ''}`.trim());
    if (bad.length) reasons.push(`${bad.length} media request(s) failed or got status >= 400`);
    if (S.fragsLoaded < 1 || fragReqs.length < 1) reasons.push('no fragment loaded');
    if (typeof stop === 'string' && stop.startsWith('page-wait-error')) reasons.push(stop);
    const ok = reasons.length === 0;

    const acao = [...new Set(mediaReqs.map((r) => r.acao).filter((x) => x !== null))];
    summary = {
      ok,
      reasons,
      url: redact(opts.url),
      page_origin: pageOrigin,
      media_origin: opts.mediaOrigin,
      cross_origin: pageOrigin !== opts.mediaOrigin,
      insecure: INSECURE,
      browser: `chromium ${browserVersion}`,
      player: opts.player,
      hls_js: probe.hlsVersion || hlsVersion,
      shaka: shakaVersion,
      credentials: opts.credentials,
      append_token: opts.appendToken,
      cat_header: opts.catHeader ? opts.catHeader.name : null,
      cat_cookie: opts.catCookie ? opts.catCookie.name : null,
      live: S.live,
      mse_h264_aac: probe.h264_aac_mp4,
      mse: { 'avc1.64001f,mp4a.40.2': probe.h264_aac_mp4, 'avc1.4d401e': probe.h264_main_mp4,
        'avc1.42c00c': probe.h264_baseline_mp4, 'mp4a.40.2': probe.aac_mp4 },
      stop: stop === 'page-done' ? S.outcome : stop,
      ended: S.ended,
      duration: S.duration,
      current_time: S.currentTime,
      playback_rate: opts.rate,
      levels_in_manifest: S.levelsInManifest,
      codecs: S.codecs,
      levels_loaded: S.levelsLoaded.length,
      levels_with_fragments: S.levelsWithFrags.length,
      fragments_loaded: S.fragsLoaded,
      fragment_requests: fragReqs.length,
      playlist_requests: playlistReqs.length,
      media_requests: mediaReqs.length,
      max_status: mediaReqs.reduce((m, r) => Math.max(m, r.status ?? 0), 0),
      acao_seen: acao,
      hls_errors: S.hlsErrors.map((e) => ({ ...e, url: e.url && redact(e.url) })),
      play_error: S.playError,
      failed: bad.map((r) => ({ status: r.status, failure: r.failure, url: redact(r.url) })),
      requests: mediaReqs.slice(0, 200).map((r) => `${r.status ?? 'ERR'} ${redact(r.url)}`),
      elapsed_ms: Date.now() - t0,
    };
    if (!ok) {
      for (const r of reasons) log(`FAIL: ${r}`);
      for (const e of S.hlsErrors) {
        log(`hls.js ERROR type=${e.type} details=${e.details} fatal=${e.fatal} code=${e.code ?? '-'} url=${e.url ?? '-'}${e.reason ? ` reason=${e.reason}` : ''}`);
      }
      for (const r of bad) log(`failed ${r.status ?? '-'} ${r.failure ?? ''} ${r.url}`);
      for (const c of state.consoleErrors.slice(0, 20)) log(`console ${c}`);
      for (const c of state.pageErrors.slice(0, 20)) log(`pageerror ${c}`);
      if (S.playError) log(`video.play(): ${S.playError}`);
    }
  } finally {
    await cleanup();
  }
  return summary;
}

const opts = parseArgs(process.argv.slice(2));
// A hard stop in case something refuses to settle (e.g. a wedged browser).
let exitCode = 2;
const hard = setTimeout(() => {
  log('hard timeout: harness did not finish; exiting');
  process.exit(2);
}, opts.timeoutS * 1000 + 20000);
hard.unref();

try {
  const summary = await main(opts);
  process.stdout.write(JSON.stringify(summary) + '\n');
  exitCode = summary.ok ? 0 : 1;
} catch (e) {
  const harness = e instanceof HarnessError;
  log(`${harness ? 'harness error' : 'unexpected error'}: ${e.message}`);
  if (!harness && e.stack) process.stderr.write(redact(e.stack) + '\n');
  process.stdout.write(JSON.stringify({ ok: false, harness_error: redact(e.message), elapsed_ms: Date.now() - t0 }) + '\n');
  exitCode = 2;
}
process.exit(exitCode);
