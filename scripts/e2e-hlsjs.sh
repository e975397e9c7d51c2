#!/usr/bin/env bash
# End-to-end check: hls.js (or shaka) in headless Chromium plays a stream
# through tollgate, from a page served on another origin (so every playlist
# and segment request is cross-origin and needs CORS). scripts/e2e-ffmpeg.sh
# runs it in query-token mode; scripts/e2e-browsers.py in cookie mode across
# sites and on a live stream with a page-appended token.
#
#   1. makes sure Debian's Chromium is at /usr/bin/chromium (as root with
#      apt-get, installs it: apt-get install --no-install-recommends chromium);
#   2. runs `npm ci` in scripts/e2e-hlsjs/ when node_modules is missing or does
#      not match package-lock.json (pinned playwright-core, hls.js and
#      shaka-player; no Playwright browser download: the Debian binary is used);
#   3. runs scripts/e2e-hlsjs/play.mjs on the URL: it serves a page from
#      http://127.0.0.1:<random port>, plays the URL with hls.js and prints one
#      JSON summary line (token values redacted).
#
# Usage: bash scripts/e2e-hlsjs.sh <master-url-with-token> [play.mjs options]
#        play.mjs options: --timeout-s N (default 60), --rate R (default 4),
#                          --all-levels (fetch a fragment from every variant),
#                          --player hlsjs|shaka, --credentials, --append-token,
#                          --live-s N, --page-host NAME --page-port P,
#                          --cat-header NAME=TOKEN, --cat-cookie NAME=TOKEN
#                          (see the head of play.mjs)
# Env:   E2E_INSECURE=1  Chromium ignores certificate errors (self-signed/dev CA)
#        E2E_CHROMIUM    browser binary (default /usr/bin/chromium)
# Needs: node >= 20 and npm; the npm registry (only when node_modules is stale).
# Exit:  0 played to the end; 1 playback failed; 2 harness/setup error.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
dir="$script_dir/e2e-hlsjs"
chromium=${E2E_CHROMIUM:-/usr/bin/chromium}

say() { printf 'e2e-hlsjs: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 2; }
redact() { sed -E 's/([?&;]([Tt][Oo][Kk][Ee][Nn]|CAT)=)[^&#[:space:]]*/\1…/g' <<<"$1"; }

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
url=$1
shift

# The page and the media are on 127.0.0.1 (or *.test names mapped to it): never
# route that through a proxy.
export no_proxy="127.0.0.1,localhost,.test${no_proxy:+,$no_proxy}"
export NO_PROXY="$no_proxy"

# --- 1. Chromium -------------------------------------------------------------
if [[ ! -x $chromium ]]; then
  if [[ $chromium == /usr/bin/chromium && $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing Debian chromium (apt-get, a few minutes)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } ||
        die "apt-get install chromium failed"
    fi
  fi
  [[ -x $chromium ]] || die "no Chromium at $chromium (install Debian's chromium package or set E2E_CHROMIUM)"
fi

# --- 2. node and the pinned npm packages ------------------------------------
command -v node >/dev/null || die "node not found (need node >= 20)"
command -v npm >/dev/null || die "npm not found"
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) || die "node $(node --version) too old (need >= 20, for playwright-core)"

# Stale when: no install marker, lock/package.json newer than the install, or an
# installed version differs from the one pinned in package-lock.json.
needs_ci() {
  local marker="$dir/node_modules/.package-lock.json"
  [[ -f $marker && -f $dir/node_modules/hls.js/dist/hls.min.js &&
     -f $dir/node_modules/shaka-player/dist/shaka-player.compiled.js ]] || return 0
  [[ $dir/package-lock.json -nt $marker || $dir/package.json -nt $marker ]] && return 0
  ! (cd "$dir" && node -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    for (const [p, v] of Object.entries(lock.packages || {})) {
      if (!p.startsWith("node_modules/")) continue;
      let got = null;
      try { got = JSON.parse(fs.readFileSync(p + "/package.json", "utf8")).version; } catch {}
      if (got !== v.version) process.exit(1);
    }' 2>/dev/null)
}
if needs_ci; then
  say "npm ci in scripts/e2e-hlsjs"
  start=$(date +%s)
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund) >&2 ||
    die "npm ci failed in $dir"
  say "npm ci done in $(($(date +%s) - start))s"
fi

# --- 3. play -----------------------------------------------------------------
say "chromium: $("$chromium" --version 2>/dev/null || echo '?')"
say "playing $(redact "$url")"
set +e
E2E_INSECURE=${E2E_INSECURE:-} E2E_CHROMIUM=$chromium node "$dir/play.mjs" "$url" "$@"
rc=$?
set -e
case $rc in
  0) say "PASS: played to the end" ;;
  1) say "FAIL: playback failed (see the JSON line and the lines above)" ;;
  *) say "ERROR: harness error (exit $rc)" ;;
esac
exit "$rc"
