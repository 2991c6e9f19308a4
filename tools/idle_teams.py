#!/usr/bin/env python3
"""What an idle gateway costs its Redis, by number of teams and instances
(docs/performance.md#idle-teams).

Writes N team files (copies of config/teams/globex.toml under new ids, with
API keys of their own that nobody holds), starts K instances of a built
gateway on one Redis under a key prefix of their own, waits until each
answers /readyz 200 (the time is printed), lets them idle, then counts the
commands Redis ran in a window (INFO commandstats, before and after; a
command inside a script counts) and prints them per second, in all and per
instance. Nothing is due: no interaction exists.

    python3 tools/idle_teams.py --bin target/release/chatgate --teams 1000 --instances 1

With --due N it then measures how soon due work is acted on: it queues N
due entries spread over random teams (each an expiry entry of an interaction
that does not exist, which the sweeper takes, reads and drops), due over the
next 10 s, noted in the teams' due index as the store notes a write
(docs/architecture.md#many-teams), and watches each leave its queue: the
delay from due to done, as percentiles. --kill-one first kills one instance
(SIGKILL), so the others do its share.

    python3 tools/idle_teams.py --teams 10000 --instances 4 --due 500 --kill-one

Loopback only; bounded (each instance is stopped at the end). The Redis at
--redis must not serve anything else while it measures.
"""
import argparse
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def redis_calls(host: str, port: int) -> int:
    """The sum of calls of every command Redis has counted so far."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            data += chunk
            header, _, rest = data.partition(b"\r\n")
            if header.startswith(b"$") and len(rest) >= int(header[1:]):
                break
    return sum(int(n) for n in re.findall(rb"calls=(\d+)", data))


def resp(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Replies:
    """Reads RESP replies off a socket, one at a time."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def next(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if kind == b"*":
            return [self.next() for _ in range(int(rest))]
        raise ValueError(line)


def pipeline(sock: socket.socket, replies: Replies, commands) -> list:
    sock.sendall(b"".join(resp(*c) for c in commands))
    return [replies.next() for _ in commands]


def due_delays(host: str, port: int, prefix: str, teams: int, n: int) -> list:
    """Queues `n` due entries over random teams and answers, for each, how
    long after its due time it left its queue (seconds)."""
    import random
    import uuid
    sock = socket.create_connection((host, port), timeout=10)
    replies = Replies(sock)
    now_ms = int(time.time() * 1000)
    entries = []
    for _ in range(n):
        team = f"t{random.randrange(teams):05d}"
        due = now_ms + 1000 + random.randrange(10_000)
        entries.append((f"{prefix}:{{{team}}}:dueq", f"x:{uuid.uuid4()}", due, team))
    commands = []
    for queue, member, due, team in entries:
        # As the store writes a due entry, then notes its team.
        commands.append(("ZADD", queue, due, member))
        commands.append(("PEXPIRE", queue, 3_600_000))
        commands.append(("ZADD", f"{prefix}:{{~due}}:dueq", "LT", due, team))
    pipeline(sock, replies, commands)
    done = {}
    deadline = time.time() + 40
    while len(done) < n and time.time() < deadline:
        pending = [e for e in entries if e[1] not in done]
        scores = pipeline(sock, replies, [("ZSCORE", q, m) for q, m, _, _ in pending])
        at = time.time() * 1000
        for (q, m, due, _), score in zip(pending, scores):
            if score is None:
                done[m] = (at - due) / 1000
        time.sleep(0.02)
    sock.close()
    return sorted(done.values()) + [float("inf")] * (n - len(done))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(root: str, teams: int) -> str:
    shutil.copytree("config", os.path.join(root, "config"))
    shutil.copytree("channels", os.path.join(root, "channels"))
    tdir = os.path.join(root, "config", "teams")
    template = open(os.path.join(tdir, "globex.toml"), encoding="utf-8").read()
    for f in os.listdir(tdir):
        os.remove(os.path.join(tdir, f))
    for i in range(teams):
        text = template.replace('id = "globex"', f'id = "t{i:05d}"', 1)
        text = text.replace('id = "globex-', f'id = "t{i:05d}-')
        text = text.replace('kid = "globex-1"', f'kid = "t{i:05d}-1"')
        # Each team its own API keys (a key names one team): digests of
        # keys nobody holds.
        text = re.sub(r'sha256 = "[0-9a-f]{64}"',
                      lambda m, i=i: f'sha256 = "{hashlib.sha256(f"idle-{i}-{m.start()}".encode()).hexdigest()}"',
                      text)
        with open(os.path.join(tdir, f"t{i:05d}.toml"), "w", encoding="utf-8") as out:
            out.write(text)
    return os.path.join(root, "config", "chatgate.toml")


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--bin", default="target/release/chatgate")
    a.add_argument("--teams", type=int, default=100)
    a.add_argument("--instances", type=int, default=1)
    a.add_argument("--redis", default="127.0.0.1:6379")
    a.add_argument("--settle", type=float, default=5.0, help="seconds idle before the window")
    a.add_argument("--window", type=float, default=10.0, help="seconds counted")
    a.add_argument("--due", type=int, default=0, help="due entries to time, after the idle window")
    a.add_argument("--kill-one", action="store_true", help="kill one instance before the due entries")
    a.add_argument("--reload", action="store_true",
                   help="after the window, time a reload (SIGHUP) of the first instance")
    args = a.parse_args()
    host, port = args.redis.split(":")
    root = tempfile.mkdtemp(prefix="idle-teams-")
    procs = []
    try:
        config = write_config(root, args.teams)
        prefix = f"idle{os.getpid()}"
        for _ in range(args.instances):
            p = free_port()
            env = dict(os.environ,
                       CHATGATE_SERVER__LISTEN=f"127.0.0.1:{p}",
                       CHATGATE_SERVER__PUBLIC_URL=f"http://127.0.0.1:{p}",
                       CHATGATE_STORE__BACKEND="redis",
                       CHATGATE_STORE__REDIS_URL=f"redis://{args.redis}",
                       CHATGATE_STORE__KEY_PREFIX=prefix,
                       RUST_LOG="info" if args.reload and not procs else "error")
            started = time.monotonic()
            log = open(os.path.join(root, f"log{len(procs)}"), "w")
            proc = subprocess.Popen([args.bin, "serve", "--config", config], env=env,
                                    stdout=subprocess.DEVNULL, stderr=log)
            procs.append(proc)
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{p}/readyz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() - started > 120:
                    sys.exit(f"idle_teams: an instance did not become ready ({args.teams} teams)")
                time.sleep(0.05)
            print(f"instance on :{p}: /readyz 200 after {time.monotonic() - started:.2f} s "
                  f"with {args.teams} teams")
        time.sleep(args.settle)
        before = redis_calls(host, int(port))
        time.sleep(args.window)
        after = redis_calls(host, int(port))
        # The two INFO calls of this script are not the gateway's.
        per_second = (after - before - 1) / args.window
        print(f"idle: {args.teams} teams, {args.instances} instance(s): "
              f"{per_second:.0f} Redis commands/s in all, "
              f"{per_second / args.instances:.0f} per instance")
        if args.reload:
            path = os.path.join(root, "log0")
            asked = time.monotonic()
            procs[0].send_signal(signal.SIGHUP)
            line = None
            while line is None and time.monotonic() - asked < 60:
                line = next((l for l in open(path, encoding="utf-8")
                             if "configuration reloaded" in l), None)
                time.sleep(0.02)
            print(f"reload of {args.teams} teams: {time.monotonic() - asked:.2f} s; "
                  f"logged: {(line or 'nothing').strip()}")
        if args.due:
            if args.kill_one:
                procs[0].kill()
                procs[0].wait()
            d = due_delays(host, int(port), prefix, args.teams, args.due)
            pct = lambda p: d[min(len(d) - 1, int(p * len(d)))]
            print(f"due to done, {args.due} entries over {args.teams} teams"
                  f"{', one instance killed' if args.kill_one else ''}: "
                  f"p50 {pct(0.5):.2f} s, p90 {pct(0.9):.2f} s, p99 {pct(0.99):.2f} s, "
                  f"max {d[-1]:.2f} s")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
