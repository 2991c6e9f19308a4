#!/usr/bin/env python3
"""What an idle gateway costs its Redis, by number of teams and instances
(docs/performance.md#idle-teams).

Writes N team files (copies of config/teams/globex.toml under new ids, with
API keys of their own that nobody holds), starts K instances of a built
gateway on one Redis under a key prefix of their own, waits until each
answers /readyz 200 (the time is printed; the key prefix is new, so the
first instance records every team's config.changed before it is ready, as
a new deployment does), lets them idle, then counts the
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

--memory starts the instances on the memory store instead: only the
start to /readyz 200 and --reload are timed (there is nothing to count).

    python3 tools/idle_teams.py --memory --teams 10000 --reload

--cluster runs the same on a Redis Cluster the tool starts on its own
ports in a temp folder: three masters, each with a replica,
`cluster-require-full-coverage no` (redis-server and redis-cli on PATH);
commands are counted on every master. Every run also prints the
connections each node holds (`CLIENT LIST`, replicas' links aside) and each
instance's RSS.

--fault hang|kill (with --cluster) then stops (SIGSTOP, 15 s) or kills
(SIGKILL; its replica takes over) the master that holds the hash tag of the
teams' shared due indexes (`{~due}`: on a cluster each master has its own
copy of the indexes, but the shared ones are still read until empty), and
reports, for the teams whose keys live on the other
masters, the p99 of a status read (GET /v1/interactions/{id}, 404) before
and during the fault, and how late their due entries queued during the
fault were acted on.

    python3 tools/idle_teams.py --cluster --teams 10000 --instances 1 --fault hang

--api-teams writes the N teams through the operator API instead of as
files (docs/operator-api.md): the system file gets an `[operator]` section
(an operator key and a secrets key the tool makes), a first instance takes
N `PUT /v1/teams/{id}` (`If-None-Match: *`, --writers at once; the time
and the answers' statuses are printed) and is stopped, then the K
instances start on a store that holds N API teams and no team file: their
start to /readyz 200 is the start with N API teams, and the idle window
counts what they cost with them. The teams are those of the files (the
same ids and keys), so --due works with them too. It prints how long a
write took to be answered by its place in the run (the first writes'
median against the last's), the writes a second by the thousand, and
the writer's RSS once the writes are done against a reader's.

    python3 tools/idle_teams.py --api-teams --teams 10000 --instances 4

With --api-teams it also prints what a team costs: the store's
`used_memory` (INFO memory, every master) before and after the writes,
by the team, with the size of each key of one team (`MEMORY USAGE`, by
the key's suffix) and of the keys the teams share; and each reader's RSS
beyond that of an instance with no team (the writer's before it wrote),
by the team, beside the size of a team's body. --wrap CMD starts the
readers under CMD (e.g. `heaptrack -o /tmp/heap`, with a build of the
`system-allocator` feature: docs/performance.md#what-a-team-costs).
--reader-log DIR keeps the readers' logs in DIR, logged at
IDLE_TEAMS_READER_LOG (`info` unless set); at `info,chatgate::start=debug`
each phase of a start is a line with its wall time and the process's CPU
(docs/performance.md#a-start-of-100-000-api-teams).

    python3 tools/idle_teams.py --cluster --api-teams --teams 30000 --instances 1

Writing 10 000 teams takes minutes; --prefix P (with --api-teams) starts
the instances on the store an earlier run left under key prefix P
instead, writing nothing, with that run's secrets key in
IDLE_TEAMS_SECRETS_KEY (each run prints its prefix; a run sets its
secrets key from that variable too, when it is set).

--propagation N (two instances or more; turns the operator API on) then
times how soon a write answered by the first instance is in force on the
second: a team of its own (`tprop`) is written N times on the first, each
time with a new agent key in place of the last (`If-Match` the last
`ETag`, after a random pause of up to --pause s, so the writes fall at
every point of the second's once-a-second look), and the second is
polled every 5 ms with the new key (GET /v1/interactions/{id}: 401 until
it knows the key, 404 once it does). The delay from the first's answer
to the second's first 404 is printed as percentiles, with how often the
old key was still served on the second once the new one was, and how
long each write took to be answered.

    python3 tools/idle_teams.py --api-teams --teams 10000 --instances 2 --propagation 200

Loopback only; bounded (each instance and node is stopped at the end). The
Redis at --redis must not serve anything else while it measures.
"""
import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def command(host: str, port: int, *args, timeout: float = 5):
    """One command on a connection of its own; its reply."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(resp(*args))
        return Replies(s).next()


def redis_calls_by_command(host: str, port: int) -> dict:
    """The calls Redis has counted so far, by command."""
    info = command(host, port, "INFO", "commandstats")
    return {name: int(n) for name, n in re.findall(r"cmdstat_([^:]+):calls=(\d+)", info)}


def clients(host: str, port: int) -> int:
    """The clients a node holds, this one and replicas' links aside."""
    listed = command(host, port, "CLIENT", "LIST")
    return sum(1 for l in listed.splitlines()
               if "cmd=client|list" not in l and "flags=S" not in l)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return kb / 1024


def cpu_s(pid: int) -> float:
    """The CPU (user + system) process `pid` has used so far, in seconds:
    what a start or a reload costs, whatever else the machine runs."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def used_memory(host: str, port: int) -> int:
    """The bytes a node says it holds (`used_memory`)."""
    info = command(host, port, "INFO", "memory")
    return int(re.search(r"used_memory:(\d+)", info).group(1))


def keys_of(host: str, ports: list, pattern: str) -> dict:
    """Every key matching `pattern` on the nodes `ports`, with its size
    (`MEMORY USAGE`), by key."""
    sizes = {}
    for p in ports:
        cursor = "0"
        while True:
            cursor, found = command(host, p, "SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            for key in found:
                sizes[key] = command(host, p, "MEMORY", "USAGE", key) or 0
            if cursor == "0":
                break
    return sizes


def store_per_team(host: str, ports: list, prefix: str, teams: int, before: int) -> None:
    """Prints the store's bytes a team: `used_memory` of `ports` against
    `before`, then the keys of one team by suffix and those shared."""
    after = sum(used_memory(host, p) for p in ports)
    print(f"store used_memory: {before / 1e6:.1f} MB before the writes, {after / 1e6:.1f} MB "
          f"after: {(after - before) / teams / 1024:.1f} KB a team")
    team = keys_of(host, ports, f"{prefix}:{{t00000}}*")
    suffix = lambda key: key.split("}", 1)[1] if "}" in key else key
    print(f"one team's keys ({sum(team.values())} bytes): " + ", ".join(
        f"{suffix(k)} {n}" for k, n in sorted(team.items(), key=lambda kv: -kv[1])))
    shared = keys_of(host, ports, f"{prefix}:{{~*")
    print(f"keys the teams share: {len(shared)}, {sum(shared.values()) / 1e6:.2f} MB "
          f"({sum(shared.values()) / teams:.0f} bytes a team)")


def crc16(data: bytes) -> int:
    """CRC16/XMODEM, as Redis Cluster hashes keys."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key: str) -> int:
    k = key.encode()
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    return crc16(k) % 16384


class Cluster:
    """Three masters with a replica each on free ports, in `root`."""

    def __init__(self, root: str):
        self.dir = os.path.join(root, "cluster")
        os.makedirs(self.dir)
        self.ports, self.procs = [], {}
        while len(self.ports) < 6:
            p = free_port()
            if p < 55_000 and p not in self.ports:
                self.ports.append(p)
        for p in self.ports:
            self.start(p)
        for p in self.ports:
            self.wait_ping(p)
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while not all("cluster_state:ok" in (self.info(p) or "") for p in self.ports):
            if time.time() > deadline:
                sys.exit("idle_teams: the cluster is not ok within 30 s")
            time.sleep(0.1)
        # Replicas attached and synced before anything counts.
        time.sleep(2)

    def start(self, p: int):
        self.procs[p] = subprocess.Popen(
            ["redis-server", "--port", str(p), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{p}.conf",
             "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no",
             "--dir", self.dir, "--save", "", "--appendonly", "no",
             "--logfile", f"redis-{p}.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def wait_ping(self, p: int):
        deadline = time.time() + 10
        while True:
            try:
                command("127.0.0.1", p, "PING", timeout=1)
                return
            except OSError:
                if time.time() > deadline:
                    sys.exit(f"idle_teams: node {p} does not answer")
                time.sleep(0.05)

    def info(self, p: int):
        try:
            return command("127.0.0.1", p, "CLUSTER", "INFO", timeout=1)
        except OSError:
            return None

    def urls(self) -> str:
        return "[" + ",".join(f'"redis://127.0.0.1:{p}"' for p in self.ports) + "]"

    def masters(self) -> list:
        """(start, end, port) of each slot range's master, as a live node says."""
        for p in self.ports:
            try:
                ranges = command("127.0.0.1", p, "CLUSTER", "SLOTS", timeout=1)
            except OSError:
                continue
            return [(int(r[0]), int(r[1]), int(r[2][1])) for r in ranges]
        return []

    def master_of(self, key: str) -> int:
        """The port of `key`'s master, by a slot map at most 0.5 s old."""
        now = time.monotonic()
        if not getattr(self, "_map", None) or now - self._read > 0.5:
            self._map, self._read = self.masters() or getattr(self, "_map", []), now
        s = slot(key)
        return next((p for a, b, p in self._map if a <= s <= b), 0)

    def master_ports(self) -> list:
        return sorted({p for _, _, p in self.masters()})

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGCONT)
                except OSError:
                    pass
                proc.kill()
                proc.wait()


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


def routed(nodes, commands, owner, unanswered=None) -> list:
    """`commands`, each sent to the node `owner` names for its key (one
    pipeline per node); a node that does not answer gives `unanswered`."""
    by_node = {}
    for i, c in enumerate(commands):
        by_node.setdefault(owner(c[1]), []).append(i)
    out = [unanswered] * len(commands)
    for port, at in by_node.items():
        try:
            if port not in nodes:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                nodes[port] = (sock, Replies(sock))
            sock, replies = nodes[port]
            for i, r in zip(at, pipeline(sock, replies, [commands[i] for i in at])):
                out[i] = r
        except OSError:
            nodes.pop(port, None)
    return out


def due_index(prefix: str, queue: str, owner) -> str:
    """The due index that lists `queue`'s team: on one Redis (`owner`
    None) the shared one; on a cluster the copy of the master holding the
    queue, under the least tag `{~due<n>}` in its slots
    (docs/decisions/0230-a-due-index-per-cluster-master.md)."""
    if owner is None:
        return f"{prefix}:{{~due}}:dueq"
    master, n = owner(queue), 0
    while owner(f"{prefix}:{{~due{n}}}:dueq") != master and n < 100_000:
        n += 1
    return f"{prefix}:{{~due{n}}}:dueq"


def due_delays(host: str, port: int, prefix: str, team_ids: list, n: int,
               owner=None) -> list:
    """Queues `n` due entries over random teams of `team_ids` and answers,
    for each, how long after its due time it left its queue (seconds).
    `owner`: on a cluster, the port of the master of a key."""
    import random
    import uuid
    cluster_owner = owner
    owner = owner or (lambda key: port)
    nodes = {}
    now_ms = int(time.time() * 1000)
    entries = []
    for _ in range(n):
        team = random.choice(team_ids)
        due = now_ms + 1000 + random.randrange(10_000)
        entries.append((f"{prefix}:{{{team}}}:dueq", f"x:{uuid.uuid4()}", due, team))
    commands = []
    for queue, member, due, team in entries:
        # As the store writes a due entry, then notes its team (a note
        # the index's master does not take is the store's to repair).
        commands.append(("ZADD", queue, due, member))
        commands.append(("PEXPIRE", queue, 3_600_000))
        commands.append(("ZADD", due_index(prefix, queue, cluster_owner), "LT", due, team))
    routed(nodes, commands, owner)
    done = {}
    deadline = time.time() + 40
    while len(done) < n and time.time() < deadline:
        pending = [e for e in entries if e[1] not in done]
        unanswered = object()
        scores = routed(nodes, [("ZSCORE", q, m) for q, m, _, _ in pending], owner, unanswered)
        at = time.time() * 1000
        for (q, m, due, _), score in zip(pending, scores):
            if score is None:
                done[m] = (at - due) / 1000
        time.sleep(0.02)
    for sock, _ in nodes.values():
        sock.close()
    return sorted(done.values()) + [float("inf")] * (n - len(done))


def percentiles(d: list) -> str:
    d = sorted(d)
    pct = lambda p: d[min(len(d) - 1, int(p * len(d)))]
    return (f"p50 {pct(0.5):.3f} s, p90 {pct(0.9):.3f} s, p99 {pct(0.99):.3f} s, "
            f"max {d[-1]:.3f} s")


def status_reads(port: int, teams: list, seconds: float) -> list:
    """Status reads (404) of `teams` with their agent keys for `seconds`:
    the time of each, in seconds (one answered otherwise counts as 10 s)."""
    import uuid
    took = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        team = teams[i % len(teams)]
        i += 1
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/interactions/{uuid.uuid4()}",
            headers={"Authorization": f"Bearer {agent_key(team)}"})
        started = time.monotonic()
        try:
            urllib.request.urlopen(req, timeout=10).close()
            took.append(time.monotonic() - started)
        except urllib.error.HTTPError as e:
            took.append(time.monotonic() - started if e.code == 404 else 10.0)
        except OSError:
            took.append(10.0)
        time.sleep(0.01)
    return took


def agent_key(team: str) -> str:
    return f"cg_idle-agent-{team}"


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
        # Each team its own API keys (a key names one team): the bot's
        # nobody holds, the agent's the tool's (its status reads).
        keys = iter([f"idle-bot-{i}-nobody", agent_key(f"t{i:05d}")])
        text = re.sub(r'sha256 = "[0-9a-f]{64}"',
                      lambda m: f'sha256 = "{hashlib.sha256(next(keys).encode()).hexdigest()}"',
                      text)
        with open(os.path.join(tdir, f"t{i:05d}.toml"), "w", encoding="utf-8") as out:
            out.write(text)
    return os.path.join(root, "config", "chatgate.toml")


OPERATOR_KEY = f"cg_idle-ops-{os.urandom(16).hex()}"


def with_operator(config: str) -> None:
    """Turns the operator API on in the system file `config`: an operator
    key (OPERATOR_KEY, new) and a secrets key (IDLE_TEAMS_SECRETS_KEY, or
    a new one)."""
    secrets_key = (os.environ.get("IDLE_TEAMS_SECRETS_KEY")
                   or base64.b64encode(os.urandom(32)).decode())
    ops = hashlib.sha256(OPERATOR_KEY.encode()).hexdigest()
    with open(config, "a", encoding="utf-8") as f:
        f.write(f'\n[operator]\napi_keys = [{{ id = "idle-ops", sha256 = "{ops}", '
                f'role = "operator" }}]\n'
                f'secrets_keys = [{{ id = "idle-1", key = "{secrets_key}" }}]\n')


def api_team(i: int, agent: str) -> dict:
    """Team `t{i:05d}` as a body of the operator API: what the files of
    write_config hold (globex's), with the agent key `agent`."""
    team = f"t{i:05d}"
    sha = lambda key: hashlib.sha256(key.encode()).hexdigest()
    return {
        "id": team,
        "login_url": f"https://login.example/login?team={team}",
        "channels": ["webchat"],
        "security_keys": [{"kid": f"{team}-1", "primary": True,
                           "secret": "whsec_" + base64.b64encode(os.urandom(32)).decode()}],
        "api_keys": [{"id": f"{team}-bot", "role": "bot", "sha256": sha(f"idle-bot-{i}-nobody")},
                     {"id": f"{team}-agent", "role": "agent", "sha256": sha(agent)}],
        "settings": {"lockout": {"threshold": 3}},
    }


def call(method: str, url: str, key: str, body=None, headers=None, timeout: float = 30):
    """One request: (status, headers, body as text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {key}", **({"Content-Type": "application/json"} if data else {}),
        **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def write_api_teams(port: int, teams: int, writers: int) -> dict:
    """PUTs teams t00000.. through the operator API of the instance on
    `port`, `writers` at once; prints the time, the answers, and how long
    a write took to be answered by its place in the run: the first
    writes' median against the last's, and the rate by thousand."""
    def put(i: int) -> tuple:
        body = api_team(i, agent_key(f"t{i:05d}"))
        asked = time.monotonic()
        status, _, text = call("PUT", f"http://127.0.0.1:{port}/v1/teams/t{i:05d}", OPERATOR_KEY,
                               body, {"If-None-Match": "*"}, timeout=60)
        if status != 201 and not refused:
            refused.append(text[:2000])
        return status, time.monotonic() - asked, time.monotonic()
    refused = []
    started = time.monotonic()
    statuses, took_each, done_at = {}, [], []
    with concurrent.futures.ThreadPoolExecutor(writers) as pool:
        for status, took_one, at in pool.map(put, range(teams)):
            statuses[status] = statuses.get(status, 0) + 1
            took_each.append(took_one)
            done_at.append(at - started)
            if len(took_each) % 1000 == 0:
                print(f"  {len(took_each)} written after {at - started:.1f} s; this one answered "
                      f"after {took_one * 1000:.0f} ms", flush=True)
    took = time.monotonic() - started
    print(f"wrote {teams} teams through the operator API ({writers} at once): {took:.1f} s, "
          f"{teams / took:.0f} a second; answers {dict(sorted(statuses.items()))}")
    if statuses.get(201, 0) != teams:
        sys.exit(f"idle_teams: not every team was written; the first refused: {refused[0]}")
    ends = max(1, min(100, teams // 10))
    first = statistics.median(took_each[:ends])
    last = statistics.median(took_each[-ends:])
    print(f"a write answered after (median of {ends}): the first {first * 1000:.1f} ms, "
          f"the last {last * 1000:.1f} ms ({last / first:.2f}x)")
    step = 1000 if teams >= 2000 else max(1, teams // 10)
    rates, at = [], 0.0
    for end in range(step, teams + 1, step):
        finished = max(done_at[end - step:end])
        rates.append(f"{end}: {step / max(finished - at, 1e-9):.0f}/s")
        at = finished
    print("writes a second, by the thousand written: " + ", ".join(rates))
    return {"first": first, "last": last}


def propagation(a: int, b: int, n: int, pause: float) -> None:
    """Writes team `tprop` `n` times on the instance on port `a`, each with
    a new agent key, and times how soon the instance on `b` serves it."""
    import random
    import uuid
    url = lambda port, path: f"http://127.0.0.1:{port}{path}"
    serves = lambda port, key: call(
        "GET", url(port, f"/v1/interactions/{uuid.uuid4()}"), key, timeout=10)[0]
    body = api_team(99_999, f"cg_prop-{uuid.uuid4().hex}")
    body["id"] = "tprop"
    body["login_url"] = "https://login.example/login?team=tprop"
    body["security_keys"][0]["kid"] = "tprop-1"
    for k, name in zip(body["api_keys"], ("tprop-bot", "tprop-agent")):
        k["id"] = name
    status, headers, text = call("PUT", url(a, "/v1/teams/tprop"), OPERATOR_KEY, body,
                                 {"If-None-Match": "*"})
    if status == 412:
        # Written by an earlier run on this store (--prefix): as it stands.
        status, headers, text = call("GET", url(a, "/v1/teams/tprop"), OPERATOR_KEY)
    if status not in (200, 201):
        sys.exit(f"idle_teams: tprop not written: {status} {text[:300]}")
    etag, body = headers["ETag"], json.loads(text)
    old = None
    delays, writes, stale, odd = [], [], 0, {}
    for _ in range(n):
        time.sleep(random.uniform(0, pause))
        key = f"cg_prop-{uuid.uuid4().hex}"
        agent = next(k for k in body["api_keys"] if k["id"] == "tprop-agent")
        agent["sha256"] = hashlib.sha256(key.encode()).hexdigest()
        sent = time.monotonic()
        status, headers, text = call("PUT", url(a, "/v1/teams/tprop"), OPERATOR_KEY, body,
                                     {"If-Match": etag})
        answered = time.monotonic()
        writes.append(answered - sent)
        if status != 200:
            sys.exit(f"idle_teams: a write of tprop answered {status} {text[:300]}")
        etag, body = headers["ETag"], json.loads(text)
        while True:
            status = serves(b, key)
            if status == 404:
                delays.append(time.monotonic() - answered)
                break
            if status != 401:
                odd[status] = odd.get(status, 0) + 1
            if time.monotonic() - answered > 10:
                delays.append(float("inf"))
                break
            time.sleep(0.005)
        if old is not None and serves(b, old) != 401:
            stale += 1
        old = key
    print(f"a write on one instance in force on another, {n} writes: {percentiles(delays)}; "
          f"old key still served there after the new one: {stale} of {n}"
          f"{f'; other answers while polling: {odd}' if odd else ''}")
    print(f"each write's answer on the first: {percentiles(writes)}")


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
    a.add_argument("--memory", action="store_true",
                   help="the memory store: times the start and --reload only (nothing to count)")
    a.add_argument("--cluster", action="store_true",
                   help="on a Redis Cluster of three masters with a replica each, started here")
    a.add_argument("--fault", choices=["hang", "kill"],
                   help="(--cluster) hang or kill the master of the shared due indexes")
    a.add_argument("--api-teams", action="store_true",
                   help="write the teams through the operator API of a first instance, not as files")
    a.add_argument("--writers", type=int, default=8, help="(--api-teams) PUTs at once")
    a.add_argument("--prefix", help="(--api-teams) the key prefix of a store an earlier run "
                   "wrote its API teams to: nothing is written, the instances start on it "
                   "(IDLE_TEAMS_SECRETS_KEY: that run's secrets key)")
    a.add_argument("--wrap", help="a command the readers are started under (a heap profiler)")
    a.add_argument("--reader-log", metavar="DIR",
                   help="the readers' logs kept in DIR (log-0…), at RUST_LOG=IDLE_TEAMS_READER_LOG "
                   "(`info` unless set): the start's phases at `chatgate::start=debug`")
    a.add_argument("--propagation", type=int, default=0,
                   help="writes on the first instance to time until the second serves them")
    a.add_argument("--pause", type=float, default=1.0,
                   help="(--propagation) longest random pause before each write, seconds")
    args = a.parse_args()
    if args.prefix and not (args.api_teams and os.environ.get("IDLE_TEAMS_SECRETS_KEY")):
        sys.exit("idle_teams: --prefix needs --api-teams and IDLE_TEAMS_SECRETS_KEY")
    if args.propagation and args.instances < 2:
        sys.exit("idle_teams: --propagation needs two instances or more")
    host, port = args.redis.split(":")
    root = tempfile.mkdtemp(prefix="idle-teams-")
    procs, ports = [], []
    cluster = None
    try:
        config = write_config(root, 0 if args.api_teams else args.teams)
        if args.api_teams or args.propagation:
            with_operator(config)
        kind = "API teams" if args.api_teams else "teams"
        prefix = args.prefix or f"idle{os.getpid()}"
        backend = "memory" if args.memory else "redis"
        if args.memory:
            store = {}
        elif args.cluster:
            cluster = Cluster(root)
            store = dict(CHATGATE_STORE__CLUSTER_NODES=cluster.urls())
        else:
            store = dict(CHATGATE_STORE__REDIS_URL=f"redis://{args.redis}")
        masters = [] if args.memory else cluster.master_ports() if cluster else [int(port)]
        def calls() -> dict:
            """The calls of every master, by command."""
            out = {}
            for m in masters:
                for name, n in redis_calls_by_command("127.0.0.1" if cluster else host, m).items():
                    out[name] = out.get(name, 0) + n
            return out
        def start(name: str, quiet: bool = True):
            """An instance on a new port, once it answers /readyz 200."""
            p = free_port()
            level = "error" if quiet else "info"
            if args.reader_log and name != "writer":
                level = os.environ.get("IDLE_TEAMS_READER_LOG", "info")
            env = dict(os.environ,
                       CHATGATE_SERVER__LISTEN=f"127.0.0.1:{p}",
                       CHATGATE_SERVER__PUBLIC_URL=f"http://127.0.0.1:{p}",
                       CHATGATE_STORE__BACKEND=backend,
                       CHATGATE_STORE__KEY_PREFIX=prefix,
                       RUST_LOG=level,
                       **store)
            started = time.monotonic()
            log = open(os.path.join(root, f"log-{name}"), "w")
            wrap = shlex.split(args.wrap) if args.wrap and name != "writer" else []
            proc = subprocess.Popen([*wrap, args.bin, "serve", "--config", config], env=env,
                                    stdout=subprocess.DEVNULL, stderr=log)
            procs.append(proc)
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{p}/readyz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() - started > 600:
                    sys.exit(f"idle_teams: an instance did not become ready ({args.teams} {kind}); "
                             f"its log: {open(log.name, encoding='utf-8').read()[-2000:]}")
                time.sleep(0.01)
            return proc, p, time.monotonic() - started

        writer_rss = base_rss = None
        node_host = "127.0.0.1" if cluster else host
        if args.api_teams and not args.prefix:
            stored_before = sum(used_memory(node_host, m) for m in masters)
            writer, p, _ = start("writer")
            base_rss = rss_mb(writer.pid)
            print(f"key prefix: {prefix}; an instance with no team: RSS {base_rss:.0f} MB")
            write_api_teams(p, args.teams, args.writers)
            writer_rss = rss_mb(writer.pid)
            print(f"the writer's RSS after the writes: {writer_rss:.0f} MB")
            writer.send_signal(signal.SIGTERM)
            writer.wait(timeout=30)
            procs.remove(writer)
            if masters:
                store_per_team(node_host, masters, prefix, args.teams, stored_before)
        for i in range(args.instances):
            proc, p, took = start(str(i), quiet=not (args.reload and i == 0))
            ports.append(p)
            print(f"instance on :{p}: /readyz 200 after {took:.2f} s ({cpu_s(proc.pid):.2f} s "
                  f"of its CPU) with {args.teams} {kind}; RSS {rss_mb(proc.pid):.0f} MB")
        time.sleep(args.settle)
        before = calls()
        time.sleep(args.window)
        after = calls()
        # The INFO calls of this script are not the gateway's.
        after["info"] = after.get("info", 0) - len(masters)
        moved = {c: (n - before.get(c, 0)) / args.window for c, n in after.items()}
        per_second = sum(moved.values())
        where = ("the memory store" if args.memory
                 else "a Redis Cluster (3 masters, 3 replicas)" if cluster else "one Redis")
        print(f"idle: {args.teams} {kind}, {args.instances} instance(s) on {where}: "
              f"{per_second:.0f} Redis commands/s in all, "
              f"{per_second / args.instances:.0f} per instance; by command: "
              + ", ".join(f"{c} {n:.1f}" for c, n in sorted(moved.items()) if n))
        nodes = [] if args.memory else cluster.ports if cluster else [int(port)]
        held = [clients("127.0.0.1" if cluster else host, n) for n in nodes]
        readers = [rss_mb(proc.pid) for proc in procs]
        print(f"connections per node (all instances): {held}; "
              f"RSS per instance: {[round(r) for r in readers]} MB")
        if base_rss and args.teams:
            body = len(json.dumps(api_team(0, agent_key("t00000"))))
            print(f"a reader's RSS beyond an instance with no team: "
                  f"{(max(readers) - base_rss) * 1024 / args.teams:.1f} KB a team "
                  f"(a team's body: {body} bytes)")
        if writer_rss:
            print(f"the writer's RSS against a reader's: {writer_rss:.0f} MB against "
                  f"{max(readers):.0f} MB ({writer_rss / max(readers):.2f}x)")
        if args.reload:
            path = os.path.join(root, "log-0")
            asked, cpu_before = time.monotonic(), cpu_s(procs[0].pid)
            procs[0].send_signal(signal.SIGHUP)
            line = None
            while line is None and time.monotonic() - asked < 60:
                line = next((l for l in open(path, encoding="utf-8")
                             if "configuration reloaded" in l), None)
                time.sleep(0.02)
            print(f"reload of {args.teams} teams: {time.monotonic() - asked:.2f} s "
                  f"({cpu_s(procs[0].pid) - cpu_before:.2f} s of its CPU); "
                  f"logged: {(line or 'nothing').strip()}")
        if args.propagation:
            propagation(ports[0], ports[1], args.propagation, args.pause)
        team_ids = [f"t{i:05d}" for i in range(args.teams)]
        owner = (lambda key: cluster.master_of(key)) if cluster else None
        if args.due:
            if args.kill_one:
                procs[0].kill()
                procs[0].wait()
            d = due_delays(host, int(port), prefix, team_ids, args.due, owner)
            print(f"due to done, {args.due} entries over {args.teams} teams"
                  f"{', one instance killed' if args.kill_one else ''}: {percentiles(d)}")
        if args.fault and cluster:
            fault(args.fault, cluster, prefix, team_ids, ports[-1], owner)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if cluster:
            cluster.stop()
        if args.reader_log:
            os.makedirs(args.reader_log, exist_ok=True)
            for name in os.listdir(root):
                if name.startswith("log-") and name != "log-writer":
                    shutil.copy(os.path.join(root, name), args.reader_log)
        shutil.rmtree(root, ignore_errors=True)


def fault(kind: str, cluster: Cluster, prefix: str, team_ids: list, port: int, owner):
    """Hangs (15 s) or kills the master of the shared due indexes; the
    other masters' teams' status reads before and during, and their due
    entries queued during it."""
    victim = cluster.master_of(f"{prefix}:{{~due}}:dueq")
    others = [t for t in team_ids if cluster.master_of(f"{prefix}:{{{t}}}:i") != victim][:50]
    before = status_reads(port, others, 5)
    print(f"other teams' status reads before the fault: {percentiles(before)}")
    proc = cluster.procs[victim]
    proc.send_signal(signal.SIGSTOP if kind == "hang" else signal.SIGKILL)
    started = time.monotonic()
    import threading
    delays = []
    worker = threading.Thread(target=lambda: delays.extend(
        due_delays("127.0.0.1", victim, prefix, others, 200, owner)))
    worker.start()
    during = status_reads(port, others, 15)
    if kind == "hang":
        proc.send_signal(signal.SIGCONT)
    worker.join()
    print(f"{kind} of the due indexes' master (:{victim}), "
          f"{time.monotonic() - started:.0f} s: other teams' status reads {percentiles(during)}")
    print(f"other teams' due entries queued at the fault's start: {percentiles(delays)}")


if __name__ == "__main__":
    main()
