//! What a credential's issuer and status list signers must reach
//! (docs/wallet.md#trusted-lists): its `trusted_issuers` PEMs, and the
//! certificates of its `trusted_lists`' services — issuance services for
//! its issuer, revocation services for its status lists — from each list's
//! usable copy, fetched when it is due. A list with no usable copy is
//! never an empty list: a presentation whose chain reaches nothing else
//! leaves its challenge open (502), as a failing status list does.
use std::sync::Arc;

use crate::config::{Config, ConfigError, Team, TrustedListConfig, WalletConfig, WalletCredential};
use crate::domain::audit::{Acting, Action, Draft, Target};
use crate::domain::wallet::issuers::{verify_chain, TrustedIssuers};
use crate::domain::wallet::trusted_list::ListKind;
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::Timestamp;
use crate::trusted_lists::Changed;

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

/// Fetches every team's trusted lists in the background, at `now` (at
/// start and at each reload): an unreachable list then is no start-up
/// error, and is asked for again when a presentation needs it.
pub fn refresh_trusted_lists(core: Arc<Core>, now: Timestamp) {
    let teams: Vec<Arc<crate::config::Team>> = core
        .config()
        .teams
        .values()
        .filter(|t| {
            t.wallet
                .as_ref()
                .is_some_and(|w| !w.trusted_lists.is_empty())
        })
        .cloned()
        .collect();
    if teams.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for team in teams {
            if let Some(wallet) = &team.wallet {
                refresh_all(&core, &team, wallet, now).await;
            }
        }
    });
}

/// Fetches every trusted list of `team`'s `wallet` now, and records what
/// changed in each.
async fn refresh_all(core: &Core, team: &Team, wallet: &WalletConfig, now: Timestamp) {
    for list in &wallet.trusted_lists {
        let changed = core
            .trusted_lists()
            .refresh((&team.id, list), wallet.reach, now)
            .await;
        if let Some(changed) = changed {
            record_change(core, team, list, &changed, now).await;
        }
    }
    if let Err((key, problem)) = verify_own(core, team, false, now).await {
        tracing::error!(team = %team.id, key, problem, "the bank's own certificate is on none of its usable lists: wallets that check these lists may refuse its requests");
    }
}

/// The bank's own certificates of every file team of `config` that sets
/// `verify_own`, checked against its `wrpac` and `wrprc` lists fetched
/// now (docs/wallet.md#the-banks-own-certificates): at start, and before a
/// reload's set is put in force. The first certificate a usable list of
/// its kind does not hold is a configuration error naming its team's
/// file and key; a list with no usable copy is a warning.
pub async fn verify_own_all(
    core: &Core,
    config: &Config,
    now: Timestamp,
) -> Result<(), ConfigError> {
    // A file team's: an API team's lists are checked once it is in force
    // (`refresh_all`, logged), as no stored team stops a start or a reload.
    for team in config.teams.values().filter(|t| t.api.is_none()) {
        if let Err((key, problem)) = verify_own(core, team, true, now).await {
            return Err(ConfigError::new(
                &team.file.display().to_string(),
                key,
                problem,
            ));
        }
    }
    Ok(())
}

/// Whether `team`'s access certificate chain reaches the issuance services
/// of one of its `wrpac` lists, and its registration certificate's `x5c`
/// those of one of its `wrprc` lists (each list fetched first when
/// `fetch`, else its usable copy kept): `(key, problem)` naming the first
/// that usable lists of its kind do not hold. One with none of its lists
/// usable is a warning, not a refusal.
async fn verify_own(
    core: &Core,
    team: &Team,
    fetch: bool,
    now: Timestamp,
) -> Result<(), (String, String)> {
    let Some(wallet) = team.wallet.as_ref() else {
        return Ok(());
    };
    let Some(own) = wallet.verify_own.as_ref() else {
        return Ok(());
    };
    let checks = [
        ("wrpac", "certificate_chain", Some(&wallet.signer.chain)),
        (
            "wrprc",
            "registration_certificate",
            own.registration.as_ref(),
        ),
    ];
    for (kind, key, chain) in checks {
        let Some(chain) = chain else {
            continue;
        };
        let kind = ListKind::named(kind);
        let (mut usable, mut unusable, mut held) = (Vec::new(), Vec::new(), false);
        let lists = wallet
            .trusted_lists
            .iter()
            .filter(|l| Some(&l.kind) == kind.as_ref());
        for list in lists {
            if fetch {
                let trusted = core.trusted_lists();
                if let Some(changed) = trusted.refresh((&team.id, list), wallet.reach, now).await {
                    record_change(core, team, list, &changed, now).await;
                }
            }
            match core.trusted_lists().peek(&team.id, list, now) {
                Some(copy) => {
                    held |= verify_chain(chain, &copy.issuance, now).is_ok();
                    usable.push(list.name.as_str());
                }
                None => unusable.push(list.name.as_str()),
            }
        }
        if held {
            continue;
        }
        if usable.is_empty() {
            tracing::warn!(team = %team.id, key = %format!("wallet.{key}"), lists = %unusable.join(","), "verify_own: the bank's own certificate cannot be checked while its lists have no usable copy");
            continue;
        }
        let problem = format!(
            "is held by no issuance service of the usable list(s) {} (verify_own)",
            usable.join(", ")
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
