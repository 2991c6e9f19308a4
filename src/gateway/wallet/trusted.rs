//! What a credential's issuer and status list signers must reach
//! (docs/wallet.md#trusted-lists): its `trusted_issuers` PEMs, and the
//! certificates of its `trusted_lists`' services — issuance services for
//! its issuer, revocation services for its status lists — from each list's
//! usable copy (the timer fetches it when due; a presentation only when
//! none is usable). A list with no usable copy is
//! never an empty list: a presentation whose chain reaches nothing else
//! leaves its challenge open (502), as a failing status list does.
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;

use crate::config::{Config, ConfigError, Team, TrustedListConfig, WalletConfig, WalletCredential};
use crate::domain::audit::{Acting, Action, Draft, Target};
use crate::domain::wallet::issuers::{verify_chain, TrustedIssuers};
use crate::domain::wallet::trusted_list::ListKind;
use crate::gateway::work::Step;
use crate::gateway::{Core, Live};
use crate::store::keys;
use crate::time::every::Every;
use crate::time::{Clock, Timestamp};
use crate::trusted_lists::{Changed, Due, ListCopy, ReadNow};

/// A credential's trust at one answer.
pub(super) struct Trust {
    /// Its PEMs and its lists' issuance services.
    pub issuers: TrustedIssuers,
    /// Its PEMs and its lists' revocation services.
    pub status_signers: TrustedIssuers,
    /// A list it names has no usable copy.
    pub missing: bool,
}

/// The trust of `credential`, of `team`'s `wallet`, at `now`.
pub(super) async fn trust_of(
    core: &Core,
    (team, wallet): (&Team, &WalletConfig),
    credential: &WalletCredential,
    now: Timestamp,
) -> Trust {
    let (mut issuance, mut revocation) = (Vec::new(), Vec::new());
    let mut missing = false;
    for name in &credential.trusted_lists {
        let copy = match wallet.trusted_list(name) {
            Some(list) => {
                let trusted = core.trusted_lists();
                let (copy, changed) = trusted.usable((&team.id, list), wallet.reach, now).await;
                if let Some(changed) = changed {
                    record_change(core, team, list, &changed, now).await;
                }
                copy
            }
            None => None,
        };
        match copy {
            Some(copy) => {
                issuance.push(Arc::clone(&copy.issuance));
                revocation.push(Arc::clone(&copy.revocation));
            }
            None => missing = true,
        }
    }
    Trust {
        issuers: credential.trusted.with(issuance),
        status_signers: credential.trusted.with(revocation),
        missing,
    }
}

/// The base64url Subject Key Identifiers of `credential`'s trusted
/// issuers and of its lists' issuance services (their usable copies kept
/// now; nothing fetched): a request's `trusted_authorities`.
pub(super) fn authorities(
    core: &Core,
    (team, wallet): (&str, &WalletConfig),
    credential: &WalletCredential,
    now: Timestamp,
) -> Vec<String> {
    let mut all = credential.authorities.clone();
    for list in credential
        .trusted_lists
        .iter()
        .filter_map(|n| wallet.trusted_list(n))
    {
        if let Some(copy) = core.trusted_lists().peek(team, list, now) {
            for ski in &copy.authorities {
                if !all.contains(ski) {
                    all.push(ski.clone());
                }
            }
        }
    }
    all
}

/// How often the timer looks for lists whose `refresh` has passed.
pub const ROUND: Duration = Duration::from_secs(1);

/// How many teams' lists one round fetches at once.
const AT_ONCE: usize = 8;

/// The trusted lists' timer (docs/wallet.md#trusted-lists):
/// every [`ROUND`], each list of each team in force whose `refresh` has
/// passed since it was last asked for, or that never was (a team new,
/// or a list a reload made due), is fetched — named by a credential or
/// not — and the bank's own certificates are looked for again on the
/// copies kept. What decides is the gateway's clock.
pub async fn run_trusted_lists(
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut rounds = Every::new(ROUND, shutdown);
    while rounds.next().await {
        refresh_due(&live.current(), clock.now()).await;
    }
}

/// One round of the timer at `now`: the copies of lists no team in force
/// names forgotten, then each team's lists that are due, fetched
/// ([`AT_ONCE`] teams at a time).
async fn refresh_due(core: &Core, now: Timestamp) {
    let config = core.config();
    core.trusted_lists().keep_only(|team, list| {
        config
            .teams
            .get(team)
            .and_then(|t| t.wallet.as_ref())
            .is_some_and(|w| w.trusted_lists.iter().any(|l| l.name == list))
    });
    // The teams with lists, as the configuration keeps them: not a walk
    // of every team in force.
    let with_lists = config.sums.trusted_list_teams();
    let teams: Vec<Arc<Team>> = (with_lists.filter_map(|id| config.teams.get(id)))
        .cloned()
        .collect();
    futures::stream::iter(teams)
        .map(|team| async move { refresh_team(core, &team, now).await })
        .buffer_unordered(AT_ONCE)
        .for_each(|()| async {})
        .await;
}

/// Fetches each list of `team`'s wallet that is due at `now`, records
/// what changed in each, and, when one was fetched, looks for the bank's
/// own certificates on the copies kept: one error line when a usable
/// list does not hold one (nothing else changes).
async fn refresh_team(core: &Core, team: &Team, now: Timestamp) {
    let Some(wallet) = team.wallet.as_ref() else {
        return;
    };
    let trusted = core.trusted_lists();
    let mut fetched = false;
    for list in &wallet.trusted_lists {
        if !trusted.is_due(&team.id, list, now, Due::Refresh) {
            continue;
        }
        fetched = true;
        let changed = trusted
            .refresh((&team.id, list), wallet.reach, now, Due::Refresh)
            .await;
        if let Some(changed) = changed {
            record_change(core, team, list, &changed, now).await;
        }
    }
    if !fetched {
        return;
    }
    let kept = |list: &TrustedListConfig| trusted.peek(&team.id, list, now);
    if let Err((key, problem)) = own_held(team, kept, now) {
        tracing::error!(team = %team.id, key, problem, "the bank's own certificate is on none of its usable lists: wallets that check these lists may refuse its requests");
    }
}

/// The lists the bank's own certificates were looked for on before a set
/// was put in force, read then and not kept: kept once it is
/// ([`lists_in_force`]).
#[derive(Default)]
pub struct OwnLists(Vec<ReadNow>);

/// The bank's own certificates of every file team of `config` that sets
/// `verify_own`, looked for on its `wrpac` and `wrprc` lists read now
/// (docs/wallet.md#the-banks-own-certificates): at start, and before a
/// reload's set is put in force. The first certificate a usable list of
/// its kind does not hold is a configuration error naming its team's
/// file and key; a list with no usable copy is a warning. Nothing is
/// kept: what was read is, by [`lists_in_force`], once the set is in
/// force — a refused set leaves the lists as they were.
pub async fn verify_own_all(
    core: &Core,
    config: &Config,
    now: Timestamp,
) -> Result<OwnLists, ConfigError> {
    let mut read = Vec::new();
    // A file team's: a stored API team is checked when it is written
    // (docs/decisions/0790-a-team-s-own-certificates-are-checked-when-it-is-written.md).
    for team in config.teams.values().filter(|t| t.api.is_none()) {
        let own = read_own(core, team, now).await;
        let usable = |list: &TrustedListConfig| usable_of(&own, list);
        if let Err((key, problem)) = own_held(team, usable, now) {
            return Err(ConfigError::new(
                &team.file.display().to_string(),
                key,
                problem,
            ));
        }
        read.extend(own);
    }
    Ok(OwnLists(read))
}

/// The bank's own certificates of `team`, written through the operator
/// API, looked for on its `wrpac` and `wrprc` lists read now, nothing
/// kept: `(key, problem)` naming the first that a usable list of its
/// kind does not hold (a `PUT` answers 422 at its pointer).
pub async fn verify_own_written(
    core: &Core,
    team: &Team,
    now: Timestamp,
) -> Result<(), (String, String)> {
    let own = read_own(core, team, now).await;
    own_held(team, |list| usable_of(&own, list), now)
}

/// Once `core`'s set is in force (its `config.changed` recorded): the
/// lists `own` read for it kept, and what changed in each recorded; at a
/// reload (`reloaded`), every other list of its teams made due, so that
/// the timer fetches it at its next round (docs/wallet.md#trusted-lists).
pub async fn lists_in_force(core: &Core, own: OwnLists, reloaded: bool, now: Timestamp) {
    let trusted = core.trusted_lists();
    if reloaded {
        for team in core.config().teams.values() {
            let Some(wallet) = team.wallet.as_ref() else {
                continue;
            };
            let read = |l: &&TrustedListConfig| {
                !own.0
                    .iter()
                    .any(|r| r.team() == team.id && r.list().name == l.name)
            };
            trusted.make_due(&team.id, wallet.trusted_lists.iter().filter(read));
        }
    }
    for read in own.0 {
        let (id, list) = (read.team().to_string(), read.list().clone());
        let changed = trusted.keep(read);
        let team = core.config().teams.get(&id).cloned();
        if let (Some(changed), Some(team)) = (changed, team) {
            record_change(core, &team, &list, &changed, now).await;
        }
    }
}

/// The usable copy of `list` that `read` holds (the one read, else the
/// one kept when it was read).
fn usable_of(read: &[ReadNow], list: &TrustedListConfig) -> Option<Arc<ListCopy>> {
    read.iter()
        .find(|r| r.list().name == list.name)
        .and_then(|r| r.usable().cloned())
}

/// What `verify_own` asks of `team`: each of its own certificates, with
/// the kind of list that must hold it and its key.
fn own_checks(team: &Team) -> Vec<(ListKind, &'static str, &Vec<Vec<u8>>)> {
    let Some(wallet) = team.wallet.as_ref() else {
        return Vec::new();
    };
    let Some(own) = wallet.verify_own.as_ref() else {
        return Vec::new();
    };
    let checks = [
        ("wrpac", "certificate_chain", Some(&wallet.signer.chain)),
        (
            "wrprc",
            "registration_certificate",
            own.registration.as_ref(),
        ),
    ];
    checks
        .into_iter()
        .filter_map(|(kind, key, chain)| Some((ListKind::named(kind)?, key, chain?)))
        .collect()
}

/// `team`'s lists its own certificates are looked for on, read at `now`
/// (in turn, each within its 10 s), nothing kept.
async fn read_own(core: &Core, team: &Team, now: Timestamp) -> Vec<ReadNow> {
    let Some(wallet) = team.wallet.as_ref() else {
        return Vec::new();
    };
    let kinds: Vec<ListKind> = own_checks(team).into_iter().map(|(k, ..)| k).collect();
    let mut read = Vec::new();
    for list in wallet
        .trusted_lists
        .iter()
        .filter(|l| kinds.contains(&l.kind))
    {
        let trusted = core.trusted_lists();
        read.push(trusted.read_now((&team.id, list), wallet.reach, now).await);
    }
    read
}

/// Whether `team`'s access certificate chain reaches the issuance services
/// of one of its `wrpac` lists, and its registration certificate's `x5c`
/// those of one of its `wrprc` lists, each list's usable copy as
/// `usable` gives it: `(key, problem)` naming the first that usable lists
/// of its kind do not hold. One with none of its lists usable is a
/// warning, not a refusal.
fn own_held(
    team: &Team,
    usable: impl Fn(&TrustedListConfig) -> Option<Arc<ListCopy>>,
    now: Timestamp,
) -> Result<(), (String, String)> {
    let Some(wallet) = team.wallet.as_ref() else {
        return Ok(());
    };
    for (kind, key, chain) in own_checks(team) {
        let (mut usable_lists, mut unusable, mut held) = (Vec::new(), Vec::new(), false);
        for list in wallet.trusted_lists.iter().filter(|l| l.kind == kind) {
            match usable(list) {
                Some(copy) => {
                    held |= verify_chain(chain, &copy.issuance, now).is_ok();
                    usable_lists.push(list.name.as_str());
                }
                None => unusable.push(list.name.as_str()),
            }
        }
        if held {
            continue;
        }
        if usable_lists.is_empty() {
            tracing::warn!(team = %team.id, key = %format!("wallet.{key}"), lists = %unusable.join(","), "verify_own: the bank's own certificate cannot be checked while its lists have no usable copy");
            continue;
        }
        let problem = format!(
            "is held by no issuance service of the usable list(s) {} (verify_own)",
            usable_lists.join(", ")
        );
        return Err((format!("wallet.{key}"), problem));
    }
    Ok(())
}

/// Records `wallet.trusted_list.changed` in `team`'s trail: the list, its
/// sequence number and the services added and removed, each by its
/// certificate's SHA-256. The store down: one warning, not recorded.
async fn record_change(
    core: &Core,
    team: &Team,
    list: &TrustedListConfig,
    changed: &Changed,
    now: Timestamp,
) {
    let draft = Draft::success(
        Action::TrustedListChanged,
        &Acting::system(None),
        Target::default(),
    )
    .with("list", list.name.clone())
    .with("sequence", changed.sequence)
    .with("services_added", changed.added.clone())
    .with("services_removed", changed.removed.clone());
    let read = [keys::audit_head(&team.keyspace)];
    let written = core
        .change(&team.keyspace, &read, now, |c| {
            c.audit(draft.clone());
            Ok(Step::Write(()))
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(team = %team.id, list = %list.name, error = %e, "wallet.trusted_list.changed not recorded in the audit trail");
    }
}
