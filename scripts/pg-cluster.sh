#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the PostgreSQL store's tests, on this machine only.
#
#   eval "$(bash scripts/pg-cluster.sh start)"   # exports TOLLGATE_TEST_PG_URL, PGPASSWORD,
#                                                # TOLLGATE_TEST_PG_CA, TOLLGATE_PG_CLUSTER
#   cargo test --lib --test it -- store:: fleet::
#   bash scripts/pg-cluster.sh stop "$TOLLGATE_PG_CLUSTER"
#
# start: installs Debian's postgresql when initdb is missing (needs root), creates a
# cluster in a new temporary directory with initdb as a non-root user (`postgres` when
# run as root, else the caller), password authentication (scram-sha-256, a random
# password) for a superuser `tollgate`, listening on 127.0.0.1 at a free port and on a
# Unix socket inside the directory only, with TLS offered (a certificate for 127.0.0.1
# and localhost from a throwaway CA, whose PEM is TOLLGATE_TEST_PG_CA); prints the
# exports above on stdout (progress goes to stderr). stop: stops that cluster and
# deletes its directory.
set -euo pipefail

die() {
  echo "pg-cluster: $*" >&2
  exit 1
}

# The newest installed server's binaries (Debian keeps them out of PATH).
pg_bin() {
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [[ -n $dir && -x $dir/initdb ]] || return 1
  echo "$dir"
}

install_postgresql() {
  [[ $(id -u) -eq 0 ]] || die "postgresql is not installed and this is not root: apt-get install postgresql"
  echo "pg-cluster: installing Debian's postgresql" >&2
  # The package would start its own cluster as a service; forbid service starts.
  local made_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0 log
  log=$( { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; } </dev/null 2>&1) || rc=$?
  if [[ -n $made_policy ]]; then rm -f /usr/sbin/policy-rc.d; fi
  if [[ $rc -ne 0 ]]; then
    printf '%s\n' "$log" >&2
    die "apt-get install postgresql failed"
  fi
}

# Run a command as the cluster's (non-root) owner.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local bin
  bin=$(pg_bin) || { install_postgresql; bin=$(pg_bin) || die "no initdb after installing postgresql"; }
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "no postgres user (Debian's postgresql package creates it)"
  fi
  local dir password port
  dir=$(mktemp -d /tmp/tollgate-pg.XXXXXX)
  chmod 700 "$dir"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; fi
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  # The password file is the owner's only, and goes once initdb has read it.
  as_owner sh -c 'umask 077; cat >"$1"' sh "$dir/pwfile" <<<"$password"
  as_owner "$bin/initdb" --pgdata="$dir/data" --username=tollgate --pwfile="$dir/pwfile" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  rm -f "$dir/pwfile"
  make_certificates "$dir"
  local tries=0
  while :; do
    port=$(free_port)
    if as_owner "$bin/pg_ctl" --pgdata="$dir/data" --log="$dir/server.log" --wait --timeout=30 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" \
      start >/dev/null 2>&1; then
      break
    fi
    tries=$((tries + 1))
    # Another process may take the port between choosing and binding it: try another.
    if [[ $tries -ge 5 ]]; then
      tail -n 20 "$dir/server.log" >&2 || true
      die "the server did not start"
    fi
  done
  echo "pg-cluster: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') in $dir on 127.0.0.1:$port" >&2
  printf 'export TOLLGATE_TEST_PG_URL=%q\n' "postgres://tollgate@127.0.0.1:$port/postgres?sslmode=require"
  printf 'export PGPASSWORD=%q\n' "$password"
  printf 'export TOLLGATE_TEST_PG_CA=%q\n' "$dir/ca.crt"
  printf 'export TOLLGATE_PG_CLUSTER=%q\n' "$dir"
}

# A CA and a server certificate it signed (127.0.0.1, localhost), for the server's TLS.
make_certificates() {
  local dir=$1
  as_owner sh -c '
    set -e
    cd "$1"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=tollgate test CA" -keyout ca.key -out ca.crt
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/CN=localhost" -keyout server.key -out server.csr
    printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n" >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.crt
    chmod 644 ca.crt
  ' sh "$dir" >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; die "openssl failed"; }
}

stop() {
  local dir=${1:-${TOLLGATE_PG_CLUSTER:-}}
  [[ -n $dir ]] || die "stop: which cluster? (its directory, or TOLLGATE_PG_CLUSTER)"
  [[ $dir == /tmp/tollgate-pg.* && -d $dir/data ]] || die "stop: $dir is not a cluster this script made"
  local bin
  bin=$(pg_bin) || die "no PostgreSQL binaries"
  as_owner "$bin/pg_ctl" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null 2>&1 || true
  rm -rf -- "$dir"
  echo "pg-cluster: stopped and removed $dir" >&2
}

case ${1:-} in
start) start ;;
stop) stop "${2:-}" ;;
*) die "usage: $0 start | stop [DIR]" ;;
esac
