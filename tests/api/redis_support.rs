//! Redis for tests: a store under a unique key prefix, a look at the keys it
//! wrote (names and TTLs), and cleanup of exactly those keys afterwards.
//!
//! Without a Redis at [`REDIS_URL`] the Redis tests are skipped loudly, unless
//! `CI=true`: there they are mandatory and fail.
#![allow(dead_code)]
use std::time::Duration;

use chatgate::store::redis::RedisStore;
use chatgate::store::Store;
use redis::Value;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The keys of one test, removed when dropped (also when the test fails).
/// Uses `SCAN MATCH prefix:*`, which the store itself never does.
pub struct TestPrefix {
    pub prefix: String,
    client: redis::Client,
}

/// Is the shared Redis up? In CI it must be (this panics); elsewhere a
/// loud skip message and `false`.
pub async fn redis_up() -> bool {
    let probe = RedisStore::connect(REDIS_URL, "chatgate-test-probe")
        .await
        .expect("valid Redis URL");
    let Err(e) = probe.ping().await else {
        return true;
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("Redis at {REDIS_URL} is required in CI (CI=true) but unreachable: {e}");
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! SKIPPING A REDIS TEST: no Redis at {REDIS_URL} ({e})");
    eprintln!("!!! Start one, or set CI=true to make this a failure.");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    false
}

/// A store under a fresh `chatgate-test-<uuid>` prefix, or `None` (after a
/// loud message) when no Redis answers outside CI.
pub async fn redis_store() -> Option<(RedisStore, TestPrefix)> {
    if !redis_up().await {
        return None;
    }
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let store = RedisStore::connect(REDIS_URL, &prefix)
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
    /// A free port for [`OwnRedis::start`].
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
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
        let client = redis::Client::open(REDIS_URL).expect("valid Redis URL");
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

    /// Runs a raw command, bypassing the store (to plant foreign data).
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
