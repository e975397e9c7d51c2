"""Run a release tollgate for a script: a config with a cached route, free loopback
ports, start, wait until it listens, mint tokens, stop by PID.

Used by scripts/e2e-cache.py, benches/cache-memory.py and benches/fanout/fanout.py
(the benches add scripts/ to their import path). The config is the caller's body (routes, origins, [cache]) after a fixed
head: plain listener only, admin listener, a store and a generated Ed25519 key in the
temporary directory, no rate limits, no access log.
"""

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time

HEAD = """
[edge]
tls_listen = ""
plain_listen = "127.0.0.1:{plain}"
[admin]
listen = "127.0.0.1:{admin}"
token_file = "admin-token"
[store]
path = "state/tollgate.db"
[limits]
per_ip = "off"
per_subject = "off"
[log]
access = "off"
[[keys]]
kid = "k"
alg = "EdDSA"
public = "keys/k.pub.pem"
private = "keys/k.pem"
active = true
dev_generate = true
"""


ROUTE = """
[cache]
enabled = true
{cache}
[[origins]]
name = "o"
upstreams = ["http://127.0.0.1:{origin}"]
{origin_lines}
[[routes]]
name = "live"
path = "/live/{{rid}}/"
type = "live"
origin = "o"
[[resources]]
id = "ev"
type = "live"
org = "org"
"""


def cached_route(origin_port, cache="", origin=""):
    """A config body: the cache on, one HTTP origin "o" on `origin_port`, the cached route
    /live/{rid}/ and its resource `ev`; extra `[cache]` and `[[origins]]` lines."""
    return ROUTE.format(cache=cache, origin=origin_port, origin_lines=origin)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, proc=None):
    """Wait (bounded) until something listens on `port`; fail if `proc` exits first."""
    for _ in range(300):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


class Gate:
    def __init__(self, binary, directory, plain, admin, proc):
        self.binary, self.dir, self.plain, self.admin, self.proc = binary, directory, plain, admin, proc
        self.config = os.path.join(directory, "tollgate.toml")

    def mint(self, resource, sub=None):
        cmd = [self.binary, "token", "mint", "--config", self.config, "--resource", resource, "--ttl", "1h"]
        if sub:
            cmd += ["--sub", sub]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def gate(binary, body):
    """A running tollgate whose config is HEAD followed by `body`."""
    plain, admin = free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "tollgate.toml"), "w") as fh:
            fh.write(HEAD.format(plain=plain, admin=admin) + body)
        proc = subprocess.Popen([binary, "serve", "--config", os.path.join(d, "tollgate.toml")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            wait_port(plain, "tollgate", proc)
            yield Gate(binary, d, plain, admin, proc)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
