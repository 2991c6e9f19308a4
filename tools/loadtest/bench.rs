//! What every scenario of the load benchmark shares: the plan and rows of one
//! store's run ([`Bench`]), a measurement between two of its ceiling's, and
//! the requests several scenarios send.
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::engine::{self, request, MakeReq, OnAnswer, Outcome, Plan};
use crate::gateway::{self, Running, Seeded};
use crate::report::{self, Row};

pub fn rand_index(n: usize) -> usize {
    (rand::random::<u64>() % n as u64) as usize
}

/// The scenarios on one store, each a row.
pub struct Bench {
    pub plan: Plan,
    pub rows: Vec<Row>,
    pub only: Option<String>,
    /// The saturating callback row's measured time (zero: no such row).
    pub saturate: Duration,
    /// Whether the traced twins of the status read and callback rows run.
    pub traced: bool,
    /// The ceiling of the store being measured, measured again right
    /// before and after each of its scenarios (see [`Bench::measure_on`]).
    pub ceiling: Option<std::net::SocketAddr>,
}

impl Bench {
    /// Whether the scenario `name` is to run (see `--only`).
    pub fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| name.to_lowercase().contains(&o.to_lowercase()))
    }

    /// One scenario's load at `addr`; on `redis`, with Redis' own counters
    /// read at the start of the measured time (after the warm-up) and when
    /// the load ends (at the end of the measured time, or sooner when the
    /// scenario runs dry), beside the load.
    pub async fn measure(
        &mut self,
        redis: bool,
        addr: std::net::SocketAddr,
        make: MakeReq,
        on: Option<OnAnswer>,
    ) -> Outcome {
        let sampler = redis.then(|| {
            let warmup = self.plan.warmup;
            tokio::spawn(async move {
                let mut conn = gateway::redis_conn().await;
                tokio::time::sleep(warmup).await;
                let start = gateway::RedisCounters::read(&mut conn).await?;
                Some((start, conn))
            })
        });
        let mut o = engine::run(addr, self.plan, make, on).await;
        if let Some(sampler) = sampler {
            if let Ok(Some((start, mut conn))) = sampler.await {
                if let Some(end) = gateway::RedisCounters::read(&mut conn).await {
                    o.redis = Some(start.per_request(&end, o.requests));
                }
            }
        }
        o
    }

    /// The ceiling of the store being measured, for 1 s (`NaN` when there
    /// is none).
    pub async fn ceiling_now(&self) -> f64 {
        match self.ceiling {
            Some(addr) => {
                let plan = Plan {
                    warmup: Duration::from_millis(200),
                    duration: self.plan.duration.min(Duration::from_secs(1)),
                    ..self.plan
                };
                engine::run(addr, plan, get("/".into(), "-"), None)
                    .await
                    .req_per_s
            }
            None => f64::NAN,
        }
    }

    /// [`Bench::measure`] on the gateway `g`, between two measurements of
    /// its store's ceiling (1 s each): the outcome and the ceiling before
    /// and after. Before the second, waits until the gateway's outbox has
    /// delivered what the scenario left (each scenario's events and notices
    /// are delivered while it runs; the rest must weigh neither on the next
    /// scenario's figures nor on the ceiling).
    ///
    /// The ceiling is measured around every scenario because on a shared
    /// 2-core machine it drifts within one run (75 k to 109 k req/s bare
    /// here, minutes apart), and some machines switch between two speeds
    /// (bare ~93 k or ~130 k): a ratio is only as good as its ceiling's
    /// timing, and a row whose two ceilings differ says so.
    pub async fn measure_on(
        &mut self,
        g: &Running,
        make: MakeReq,
        on: Option<OnAnswer>,
    ) -> (Outcome, report::Ceiling) {
        let before = self.ceiling_now().await;
        let mut o = self.measure(g.redis, g.addr, make, on).await;
        o.outbox_after_s = Some(g.settle().await);
        let after = self.ceiling_now().await;
        (o, report::Ceiling { before, after })
    }
}

pub fn get(path: String, key: &str) -> MakeReq {
    let auth = format!("Bearer {key}");
    Arc::new(move |_, _| {
        let r = request("GET", &path, &[("authorization", &auth)], Vec::new());
        async move { Some(r) }.boxed()
    })
}

/// Status read of a random seeded interaction.
pub fn status_read(g: &Running, seeded: Arc<Vec<Seeded>>) -> MakeReq {
    let auth = format!("Bearer {}", g.agent);
    Arc::new(move |_, _| {
        let s = &seeded[rand_index(seeded.len())];
        let r = request(
            "GET",
            &format!("/v1/interactions/{}", s.id),
            &[("authorization", &auth)],
            Vec::new(),
        );
        async move { Some(r) }.boxed()
    })
}
