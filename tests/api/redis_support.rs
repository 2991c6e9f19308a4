//! Redis for tests: a store under a unique key prefix, a look at the keys it
//! wrote (names and TTLs), and cleanup of exactly those keys afterwards.
//!
//! Which Redis: `REDIS_URL` (default `redis://127.0.0.1:6379`). When none
//! answers there, outside CI, the tests start a private `redis-server` on a
//! free port (no persistence; it exits with the test process) if one is
//! installed. With `CI=true` an unreachable `REDIS_URL` fails every Redis
//! test. With no Redis at all the Redis tests skip, and one test,
//! [`redis_tests_ran`], fails to say so in the runner's summary unless
//! `CHATGATE_TEST_ALLOW_NO_REDIS=1` accepts the skip.
#![allow(dead_code)]
use std::sync::OnceLock;
use std::time::Duration;

use chatgate::store::redis::RedisStore;
use redis::Value;

/// The default of `REDIS_URL`.
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The Redis the tests use: `Ok(url)`, or `Err(why not)`; decided once per
/// test process.
static REDIS: OnceLock<Result<String, String>> = OnceLock::new();

/// Does a Redis answer PING at `url` within a second?
fn answers(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| format!("bad REDIS_URL: {e}"))?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn choose() -> Result<String, String> {
    let url = std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_string());
    let unreachable = match answers(&url) {
        Ok(()) => return Ok(url),
        Err(e) => format!("no Redis at {url} ({e})"),
    };
    if in_ci() || !OwnRedis::available() {
        return Err(unreachable);
    }
    let private = OwnRedis::start_for_process(crate::helpers::free_port());
    let url = private.url();
    for _ in 0..50 {
        if answers(&url).is_ok() {
            eprintln!("{unreachable}: the Redis tests use a private redis-server at {url}");
            return Ok(url);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{unreachable}; a private redis-server did not start"
    ))
}

/// The URL of the tests' Redis (the shared one, or the private one),
/// `REDIS_URL` itself when there is none (its tests skip or fail).
pub fn redis_url() -> String {
    match REDIS.get_or_init(choose) {
        Ok(url) => url.clone(),
        Err(_) => std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into()),
    }
}

/// The keys of one test, removed when dropped (also when the test fails).
/// Uses `SCAN MATCH prefix:*`, which the store itself never does.
pub struct TestPrefix {
    pub prefix: String,
    client: redis::Client,
}

/// Is the tests' Redis up? In CI it must be (this panics); elsewhere a
/// loud skip message and `false` ([`redis_tests_ran`] reports the skip).
pub async fn redis_up() -> bool {
    let why = match REDIS.get_or_init(choose) {
        Ok(_) => return true,
        Err(why) => why.clone(),
    };
    if in_ci() {
        panic!("Redis is required in CI (CI=true) but unreachable: {why}");
    }
    eprintln!("!!! SKIPPING A REDIS TEST: {why}. Start one or set REDIS_URL; CI=true makes this a failure.");
    false
}

/// Fails (visible in any runner's summary) when the Redis tests were
/// skipped for want of a Redis, unless `CHATGATE_TEST_ALLOW_NO_REDIS=1`.
#[test]
fn redis_tests_ran() {
    if let Err(why) = REDIS.get_or_init(choose) {
        let allowed = std::env::var("CHATGATE_TEST_ALLOW_NO_REDIS").as_deref() == Ok("1");
        assert!(
            allowed || in_ci(),
            "the Redis tests were SKIPPED: {why}, and no redis-server is installed. \
             Install redis-server, start a Redis, or point REDIS_URL at one; \
             CHATGATE_TEST_ALLOW_NO_REDIS=1 accepts the skip"
        );
    }
}

/// How many items the queue `physical` holds: its members below 2^53,
/// where the Redis store keeps the queue's keeper (src/store/redis.rs).
pub async fn queue_items(conn: &mut redis::aio::MultiplexedConnection, physical: &str) -> usize {
    redis::cmd("ZCOUNT")
        .arg(physical)
        .arg("-inf")
        .arg("(9007199254740992")
        .query_async(conn)
        .await
        .expect("ZCOUNT")
}

/// One key under a test's prefix as Redis holds it: its `PTTL` (-2: gone
/// since it was listed) and what it holds (a string's text, a hash's
/// values, a sorted set's members, a stream's fields and values).
pub struct Dumped {
    pub key: String,
    pub pttl: i64,
    pub values: Vec<String>,
}

/// Every key under `prefix`, for a test that searches the store for what
/// must never be there (a code, a token, a secret). A key the gateway
/// removes while this reads (the outbox delivers its items) holds nothing.
pub async fn dump_prefix(prefix: &str) -> Vec<Dumped> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut dumped = Vec::with_capacity(keys.len());
    for key in keys {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let query = |name: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(&key);
            cmd
        };
        let values: Vec<String> = match kind.as_str() {
            "string" => (query("GET").query_async::<Option<String>>(&mut conn).await)
                .unwrap()
                .into_iter()
                .collect(),
            "hash" => query("HVALS").query_async(&mut conn).await.unwrap(),
            "zset" => query("ZRANGE")
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "stream" => (query("XRANGE").arg("-").arg("+"))
                .query_async::<Vec<(String, Vec<String>)>>(&mut conn)
                .await
                .unwrap()
                .into_iter()
                .flat_map(|(_, fields)| fields)
                .collect(),
            _ => Vec::new(),
        };
        dumped.push(Dumped { key, pttl, values });
    }
    dumped
}

/// A store under a fresh `chatgate-test-<uuid>` prefix, or `None` (after a
/// loud message) when no Redis answers outside CI.
pub async fn redis_store() -> Option<(RedisStore, TestPrefix)> {
    if !redis_up().await {
        return None;
    }
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let store = RedisStore::connect(&redis_url(), &prefix)
        .await
        .expect("valid Redis URL");
    Some((store, TestPrefix::for_prefix(&prefix)))
}

/// A private `redis-server` on its own port, killed when dropped or stopped,
/// so a test can take Redis away and bring it back.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    /// A private `redis-server` on a free port, given 300 ms to listen, for
    /// a test that takes Redis away; `None` (said loudly) without the binary.
    pub async fn private(test: &str) -> Option<Self> {
        if !Self::available() {
            eprintln!("!!! SKIPPING {test}: no redis-server binary on PATH");
            return None;
        }
        let server = Self::start(crate::helpers::free_port());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Some(server)
    }

    /// A gateway of `setup` on a private `redis-server` of its own, for a
    /// test that counts what that gateway alone issues; the server lives
    /// as long as it is kept. `None` (said loudly) without the binary.
    pub async fn gateway(
        test: &str,
        setup: crate::helpers::Setup,
    ) -> Option<(Self, crate::helpers::TestApp)> {
        let server = Self::private(test).await?;
        let setup = crate::helpers::Setup {
            redis_url: Some(server.url()),
            ..setup
        };
        let app = crate::helpers::spawn_with(crate::helpers::Backend::Redis, setup).await?;
        Some((server, app))
    }

    /// Whether a `redis-server` binary is on PATH.
    pub fn available() -> bool {
        std::process::Command::new("redis-server")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok()
    }

    pub fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        OwnRedis {
            port,
            child: Some(child),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A `redis-server` that lives as long as this test process: a small
    /// shell watches the process and stops the server when it is gone (a
    /// static is never dropped, so `Drop` cannot).
    fn start_for_process(port: u16) -> Self {
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & r=$!; \
             while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $r; wait $r",
            parent = std::process::id()
        );
        let child = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok();
        // Not kept: the watcher outlives this handle by design.
        drop(child);
        OwnRedis { port, child: None }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TestPrefix {
    /// The keys under `prefix`, deleted when this is dropped.
    pub fn for_prefix(prefix: &str) -> Self {
        let client = redis::Client::open(redis_url()).expect("valid Redis URL");
        TestPrefix {
            prefix: prefix.to_string(),
            client,
        }
    }

    fn connection(&self) -> redis::Connection {
        self.client
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("test connection to Redis")
    }

    /// The physical name of a logical key.
    pub fn physical(&self, logical: &str) -> String {
        format!("{}:{logical}", self.prefix)
    }

    /// Every physical key under this prefix, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.try_keys(&mut self.connection()).expect("SCAN")
    }

    fn try_keys(&self, conn: &mut redis::Connection) -> redis::RedisResult<Vec<String>> {
        let pattern = format!("{}:*", self.prefix);
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query(conn)?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// `PTTL` of a physical key: ms left, -1 without TTL, -2 when absent.
    pub fn pttl(&self, physical: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(physical)
            .query(&mut self.connection())
            .expect("PTTL")
    }

    /// What is left of `member`'s life in the expiry set `physical` (ms, by
    /// Redis' clock); `None` when it has no entry there.
    pub fn expiry_left(&self, physical: &str, member: &str) -> Option<i64> {
        let mut conn = self.connection();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query(&mut conn).expect("TIME");
        let at: Option<f64> = redis::cmd("ZSCORE")
            .arg(physical)
            .arg(member)
            .query(&mut conn)
            .expect("ZSCORE");
        at.map(|at| at as i64 - (secs * 1000 + micros / 1000))
    }

    /// Runs a raw command, bypassing the store (to plant foreign data, or
    /// run a script of the gateway's on its own).
    pub fn raw(&self, args: &[&str]) -> Value {
        let mut command = redis::cmd(args[0]);
        command.arg(&args[1..]);
        command.query(&mut self.connection()).expect("raw command")
    }

    /// Deletes every key under this prefix (never FLUSHALL/FLUSHDB).
    pub fn cleanup(&self) {
        self.try_cleanup().expect("cleanup");
    }

    /// Cleanup that cannot panic, for `Drop` (which may run during a panic).
    fn try_cleanup(&self) -> redis::RedisResult<()> {
        let mut conn = self
            .client
            .get_connection_with_timeout(Duration::from_secs(2))?;
        let keys = self.try_keys(&mut conn)?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).query::<Value>(&mut conn)?;
        }
        Ok(())
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        if let Err(e) = self.try_cleanup() {
            eprintln!(
                "warning: could not clean up Redis keys under {}: {e}",
                self.prefix
            );
        }
    }
}

/// A Redis Cluster of three masters (no replicas) on free loopback ports:
/// three `redis-server --cluster-enabled yes` in a temp folder, joined with
/// `redis-cli --cluster create`. Dropping it kills them and removes the
/// folder. A node can be killed and restarted on its port with its node
/// file, so it rejoins with its slots (empty: nothing is saved).
pub struct OwnCluster {
    pub ports: Vec<u16>,
    /// `--cluster-node-timeout`: how long a node may be silent before it
    /// counts as failed (and a replica takes over).
    node_timeout_ms: u64,
    dir: std::path::PathBuf,
    nodes: Vec<Option<std::process::Child>>,
}

/// `CI=true`: Redis tests are mandatory there.
fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Can this machine run an [`OwnCluster`]? In CI it must (this panics);
/// elsewhere a loud skip message and `false`.
pub fn cluster_binaries_present(test: &str) -> bool {
    let present = |bin: &str| {
        std::process::Command::new(bin)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if present("redis-server") && present("redis-cli") {
        return true;
    }
    if in_ci() {
        panic!("{test}: redis-server and redis-cli are required in CI (CI=true)");
    }
    eprintln!("!!! SKIPPING {test}: no redis-server/redis-cli on PATH for a Redis Cluster");
    false
}

impl OwnCluster {
    /// Starts three masters and waits until every node says the cluster is ok.
    pub fn start() -> Result<Self, String> {
        Self::start_afresh(0, 15_000)
    }

    /// Three masters with one replica each (six nodes), and a node timeout
    /// of `node_timeout_ms`: a killed master is replaced by its replica.
    pub fn start_with_replicas(node_timeout_ms: u64) -> Result<Self, String> {
        Self::start_afresh(1, node_timeout_ms)
    }

    /// [`OwnCluster::start_in`] a fresh folder, up to three times: a port
    /// found free can be taken by another test before its node binds it.
    /// (A try that fails is dropped, which stops its nodes.)
    fn start_afresh(replicas: usize, node_timeout_ms: u64) -> Result<Self, String> {
        let mut failed = String::new();
        for _ in 0..3 {
            match Self::start_in(Self::fresh_dir(), replicas, node_timeout_ms) {
                Ok(cluster) => return Ok(cluster),
                Err(e) => failed = e,
            }
        }
        Err(failed)
    }

    fn fresh_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("chatgate-cluster-{}", uuid::Uuid::now_v7()))
    }

    /// Three masters with `replicas` replicas each, files in `dir`.
    fn start_in(
        dir: std::path::PathBuf,
        replicas: usize,
        node_timeout_ms: u64,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 3 * (1 + replicas) {
            let port = crate::helpers::free_port();
            // The cluster bus listens on port + 10000.
            let bus_free =
                port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok();
            if bus_free && !ports.contains(&port) {
                ports.push(port);
            }
        }
        let mut cluster = OwnCluster {
            ports: ports.clone(),
            node_timeout_ms,
            dir,
            nodes: Vec::new(),
        };
        for i in 0..ports.len() {
            let child = cluster.spawn(i)?;
            cluster.nodes.push(Some(child));
        }
        for i in 0..ports.len() {
            cluster.wait_for_ping(i)?;
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = std::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string()])
            .arg("--cluster-yes")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        cluster.wait_until_ok(Duration::from_secs(20))?;
        Ok(cluster)
    }

    fn spawn(&self, i: usize) -> Result<std::process::Child, String> {
        let port = self.ports[i].to_string();
        std::process::Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-node-timeout", &self.node_timeout_ms.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no"])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--logfile", &format!("redis-{port}.log")])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))
    }

    /// `redis://127.0.0.1:<port>` of every node, for `cluster_nodes`.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    fn node(&self, port: u16) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))?
            .get_connection_with_timeout(Duration::from_millis(500))
    }

    fn wait_for_ping(&self, i: usize) -> Result<(), String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let pong = self
                .node(self.ports[i])
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match pong {
                Ok(_) => return Ok(()),
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(format!("node {} never answered: {e}", self.ports[i]))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub fn wait_until_ok(&self, within: Duration) -> Result<(), String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let all_ok = self.ports.iter().all(|p| {
                self.node(*p)
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            if all_ok {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("cluster not ok within {within:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The index (into `ports`) of the master that holds `physical_key`.
    pub fn owner_of(&self, physical_key: &str) -> usize {
        self.serving(physical_key).expect("every slot is served")
    }

    /// The index (into `ports`) of the master that holds `physical_key`,
    /// as the node asked sees it; `None` while that node counts its slot
    /// served by no master (during a failover, between the master's
    /// failure and its replica's promotion).
    pub fn serving(&self, physical_key: &str) -> Option<usize> {
        let mut conn = self.any_node();
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(physical_key)
            .query(&mut conn)
            .expect("CLUSTER KEYSLOT");
        // Each entry: start, end, [host, port, id, ...] of the master, replicas.
        let slots: Vec<Vec<Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut conn)
            .expect("CLUSTER SLOTS");
        let int = |v: &Value| match v {
            Value::Int(i) => *i,
            other => panic!("CLUSTER SLOTS: {other:?}"),
        };
        let port = slots
            .iter()
            .find(|e| (int(&e[0])..=int(&e[1])).contains(&slot))
            .map(|e| match &e[2] {
                Value::Array(master) => int(&master[1]),
                other => panic!("CLUSTER SLOTS: {other:?}"),
            })?;
        let node = self.ports.iter().position(|p| i64::from(*p) == port);
        Some(node.expect("a node of this cluster"))
    }

    /// A connection to any node that answers.
    fn any_node(&self) -> redis::Connection {
        self.ports
            .iter()
            .find_map(|p| self.node(*p).ok())
            .expect("a cluster node answers")
    }

    /// Waits until every replica of node `i` (a master) has all its writes.
    pub fn wait_replicated(&self, i: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut conn = self.node(self.ports[i]).expect("the master answers");
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .expect("INFO replication");
            let field = |line: &str, name: &str| {
                line.split([',', ':'])
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            let master = info
                .lines()
                .find_map(|l| l.strip_prefix("master_repl_offset:"))
                .and_then(|v| v.trim().parse::<u64>().ok());
            // Past the first full sync ("online"), at the master's offset.
            let replicas: Vec<u64> = info
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                .filter_map(|l| field(l, "offset"))
                .collect();
            if master.is_some()
                && !replicas.is_empty()
                && replicas.iter().all(|o| Some(*o) == master)
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "replicas of node {i} never caught up: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every key under `prefix` on every node, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for port in &self.ports {
            let mut conn = self.node(*port).expect("a cluster node");
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{prefix}:*"))
                    .arg("COUNT")
                    .arg(500)
                    .query(&mut conn)
                    .expect("SCAN");
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        keys.sort();
        keys
    }

    /// The calls every node that answers has counted (`INFO
    /// commandstats`: a command inside a script counts), of every command
    /// or of those `only` names (lower case, as `cmdstat_<name>`).
    pub fn calls(&self, only: &[&str]) -> u64 {
        let mut calls = 0;
        for port in &self.ports {
            let Ok(mut conn) = self.node(*port) else {
                continue;
            };
            let Ok(info) = redis::cmd("INFO")
                .arg("commandstats")
                .query::<String>(&mut conn)
            else {
                continue;
            };
            for line in info.lines() {
                let Some((name, stats)) = line
                    .strip_prefix("cmdstat_")
                    .and_then(|l| l.split_once(':'))
                else {
                    continue;
                };
                if !only.is_empty() && !only.contains(&name) {
                    continue;
                }
                calls += stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        calls
    }

    /// The clients each node has connected (`CLIENT LIST`), the asking one
    /// and the other nodes' links aside: per node, in `ports`' order (0 for
    /// a node that does not answer).
    pub fn clients(&self) -> Vec<usize> {
        self.ports
            .iter()
            .map(|port| {
                let Ok(mut conn) = self.node(*port) else {
                    return 0;
                };
                redis::cmd("CLIENT")
                    .arg("LIST")
                    .query::<String>(&mut conn)
                    .map_or(0, |list| {
                        list.lines()
                            .filter(|l| !l.contains("cmd=client|list") && !l.contains("flags=S"))
                            .count()
                    })
            })
            .collect()
    }

    /// The value of `physical_key`, read on the node that holds it.
    pub fn get(&self, physical_key: &str) -> Option<String> {
        let owner = self.owner_of(physical_key);
        let mut conn = self.node(self.ports[owner]).ok()?;
        redis::cmd("GET").arg(physical_key).query(&mut conn).ok()?
    }

    /// Kills node `i` (SIGKILL: a crash, not a shutdown).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its port with its node file: it rejoins
    /// as the master of its slots.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let child = self.spawn(i).expect("restart redis-server");
        self.nodes[i] = Some(child);
        self.wait_for_ping(i).expect("restarted node answers");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cluster the contract tests share, each under its own key prefix:
/// one per test run, started on first use. A run is the parent process of
/// the test processes (cargo for `cargo test`, the runner for `cargo
/// nextest run`, which starts a process per test), so every test process
/// of a run finds the same cluster through a folder named after its parent:
/// the first to create the folder starts the cluster and writes its ports
/// there; the others wait for them. A watchdog kills the nodes and removes
/// the folder once that parent is gone.
static SHARED_CLUSTER: std::sync::OnceLock<Result<OwnCluster, String>> = std::sync::OnceLock::new();

fn find_or_start_shared_cluster() -> Result<OwnCluster, String> {
    let run = std::os::unix::process::parent_id();
    let dir = std::env::temp_dir().join(format!("chatgate-test-cluster-of-{run}"));
    let ports_file = dir.join("ports");
    let failed_file = dir.join("failed");
    let handle = |ports: Vec<u16>| OwnCluster {
        nodes: ports.iter().map(|_| None).collect(),
        ports,
        node_timeout_ms: 15_000,
        dir: dir.clone(),
    };
    match std::fs::create_dir(&dir) {
        Ok(()) => match start_shared_cluster(&dir, run) {
            Ok(ports) => {
                let text: Vec<String> = ports.iter().map(u16::to_string).collect();
                let partial = dir.join("ports.partial");
                std::fs::write(&partial, text.join(" ")).map_err(|e| e.to_string())?;
                std::fs::rename(&partial, &ports_file).map_err(|e| e.to_string())?;
                Ok(handle(ports))
            }
            Err(e) => {
                // Tell the other test processes, and clear it after the run.
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(&failed_file, &e);
                let _ = spawn_watchdog(run, &[], &dir);
                Err(e)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(text) = std::fs::read_to_string(&ports_file) {
                    let ports: Vec<u16> = text
                        .split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect();
                    let cluster = handle(ports);
                    cluster.wait_until_ok(Duration::from_secs(10))?;
                    return Ok(cluster);
                }
                if let Ok(e) = std::fs::read_to_string(&failed_file) {
                    return Err(format!("another test process could not start it: {e}"));
                }
                if std::time::Instant::now() > deadline {
                    return Err(format!("no cluster ports in {} after 60 s", dir.display()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

/// Starts the run's cluster in `dir` and leaves it to a watchdog that
/// kills it when the process `run` is gone.
fn start_shared_cluster(dir: &std::path::Path, run: u32) -> Result<Vec<u16>, String> {
    // Up to three tries, as `OwnCluster::start_afresh` (a failed one is
    // dropped: its nodes stop and the folder goes; the next makes it anew).
    let mut tries = 0;
    let mut cluster = loop {
        tries += 1;
        match OwnCluster::start_in(dir.to_path_buf(), 0, 15_000) {
            Ok(cluster) => break cluster,
            Err(e) if tries == 3 => return Err(e),
            Err(_) => {}
        }
    };
    let pids: Vec<String> = cluster
        .nodes
        .iter()
        .flatten()
        .map(|c| c.id().to_string())
        .collect();
    spawn_watchdog(run, &pids, dir)?;
    // The watchdog owns the nodes from here on: outlive this process.
    for node in &mut cluster.nodes {
        drop(node.take());
    }
    let ports = cluster.ports.clone();
    std::mem::forget(cluster);
    Ok(ports)
}

/// Kills `pids` and removes `dir` once the process `run` is gone.
fn spawn_watchdog(run: u32, pids: &[String], dir: &std::path::Path) -> Result<(), String> {
    let kill = if pids.is_empty() {
        String::new()
    } else {
        format!("kill -9 {} 2>/dev/null; ", pids.join(" "))
    };
    let script = format!(
        "while kill -0 {run} 2>/dev/null; do sleep 1; done; {kill}rm -rf '{}'",
        dir.display()
    );
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("spawn the cluster watchdog: {e}"))
}

/// The shared cluster, or `None` (after a loud message) when this machine
/// has no redis-server outside CI. Panics when it cannot be started.
pub fn shared_cluster(test: &str) -> Option<&'static OwnCluster> {
    if !cluster_binaries_present(test) {
        return None;
    }
    match SHARED_CLUSTER.get_or_init(find_or_start_shared_cluster) {
        Ok(cluster) => Some(cluster),
        Err(e) => panic!("{test}: could not start a local Redis Cluster: {e}"),
    }
}

/// A cluster of its own (three masters), a store on it under a fresh
/// `chatgate-test-<uuid>` prefix, and that prefix.
pub async fn own_cluster_store() -> (OwnCluster, RedisStore, String) {
    let cluster = tokio::task::spawn_blocking(OwnCluster::start)
        .await
        .unwrap()
        .expect("a local Redis Cluster starts");
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let store = RedisStore::connect_cluster(&cluster.urls(), &prefix)
        .await
        .expect("valid cluster node URLs");
    (cluster, store, prefix)
}

/// A store on the shared cluster under a fresh `chatgate-test-<uuid>`
/// prefix (its keys go with the cluster at the end of the run).
pub async fn cluster_store(test: &'static str) -> Option<RedisStore> {
    let cluster = tokio::task::spawn_blocking(move || shared_cluster(test))
        .await
        .expect("starting the shared cluster");
    let urls = cluster?.urls();
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    Some(
        RedisStore::connect_cluster(&urls, &prefix)
            .await
            .expect("valid cluster node URLs"),
    )
}
