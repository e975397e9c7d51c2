#!/usr/bin/env bash
# Live fan-out benchmark: 500 players with their own tokens against tollgate, nginx
# (proxy_cache_lock) and Varnish, one origin. See benches/fanout/README.md.
#   bash benches/fanout/run.sh            FANOUT_N=50 FANOUT_PEERS=0 FANOUT_ASSERT=1 ...
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z ${TOLLGATE_BIN:-} ]]; then
  cargo build --release --quiet
fi
exec python3 benches/fanout/fanout.py
