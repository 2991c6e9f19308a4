//! A wallet link read (docs/wallet.md#the-link-page): each fetch of the
//! page makes a new request (its `rid`, `state`, `nonce` and encryption
//! key, each from 256 random bits; the challenge keeps its five newest),
//! and its key's id is indexed so that the wallet's encrypted answer
//! finds it; the request object is served signed; the link's state is
//! read for the page's poll and its end page. Nothing here counts or uses
//! the challenge up.
use std::time::Duration;

use crate::config::WalletConfig;
use crate::domain::otp::OtpCode;
use crate::domain::wallet::challenge::{self, Showing, WalletChallenge, WalletRequest};
use crate::domain::wallet::jose::{b64url, to_b64url};
use crate::domain::wallet::request::{self, Credential, Mode, Request};
use crate::domain::wallet::request_key::RequestKey;
use crate::error::{Error, Result};
use crate::gateway::change;
use crate::gateway::links::{self, Named};
use crate::gateway::login::Speaks;
use crate::gateway::records::StoredWalletKey;
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::oidc::flow::random_value;
use crate::store::keys;
use crate::time::Timestamp;

/// What `GET /w/{code}` answers.
#[derive(Debug)]
pub enum WalletLinkTarget {
    /// The open challenge's page, with the request this fetch made.
    Page(WalletPage),
    /// A verified answer waits for its binding code, shown only where the
    /// wallet's answer came back: this page shows where to look
    /// (`page_wallet_elsewhere`) and makes no request.
    Elsewhere(Speaks),
    /// More than ten fetches of the link within a minute: 429, nothing
    /// made.
    Limited(Option<Speaks>),
    /// The challenge was used (`true`: it succeeded), or expired, was
    /// replaced or failed: its 410 page, in the interaction's language
    /// when known.
    Gone(bool, Option<Speaks>),
}

/// The page of one fresh request. Its `Debug` names no request.
pub struct WalletPage {
    pub speaks: Speaks,
    /// The team and the conversation's channel the page names.
    pub named: Named,
    /// The request object for the Digital Credentials API
    /// (`dc_api.jwt`), signed.
    pub dc_request: String,
    /// `openid4vp://?client_id=…&request_uri=…&request_uri_method=post`,
    /// or the team's `invocation` in place of `openid4vp://`.
    pub wallet_link: String,
    /// How long the challenge has left.
    pub left: Duration,
}

impl std::fmt::Debug for WalletPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletPage")
            .field("speaks", &self.speaks)
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

pub use crate::gateway::links::LinkState;

/// A wallet link read: its team's, its `[wallet]`, and the interaction as
/// it stands (`links::open`).
pub(super) type Opened<'c> = links::Opened<'c, links::Wallet>;

/// The link `code` names; 404 for a code never issued (or long gone). A
/// team that no longer has `[wallet]` reads as a forgotten interaction.
pub(super) async fn opened<'c>(core: &'c Core, code: &str, now: Timestamp) -> Result<Opened<'c>> {
    let opened = links::open::<links::Wallet>(core, code, now).await?;
    opened.ok_or(Error::NotFound("no such link"))
}

/// `GET /w/{code}/status` and `/done`: where the link's challenge stands,
/// and the language its pages speak.
pub async fn link_state(
    core: &Core,
    code: &str,
    now: Timestamp,
) -> Result<(LinkState, Option<Speaks>)> {
    let o = opened(core, code, now).await?;
    Ok((o.state(now), o.speaks()))
}

/// What `GET /w/{code}/done` shows.
#[derive(Debug)]
pub enum DonePage {
    /// The binding code, where the wallet's verified answer came back;
    /// with `Some` secret, the first open, to keep in this browser's
    /// cookie (the code is shown again in that browser only).
    Code(Speaks, OtpCode, Option<String>),
    /// A verified answer awaits its code, which this open never shows.
    Elsewhere(Speaks),
    /// Where the challenge stands otherwise.
    State(LinkState, Option<Speaks>),
}

/// `GET /w/{code}/done`, opened with `response_code` in the browser whose
/// cookie keeps `browser`: while a verified `direct_post` answer awaits
/// its binding code, the code for the first browser that opens it with
/// its `response_code` (tied to it in one commit) and again in that one
/// alone, else where to look; otherwise where the challenge stands
/// (docs/wallet.md#the-code-typed-into-the-chat).
pub async fn done_page(
    core: &Core,
    code: &str,
    (response_code, browser): (Option<&str>, Option<&str>),
    now: Timestamp,
) -> Result<DonePage> {
    let o = opened(core, code, now).await?;
    let (team, cid) = (o.team, o.challenge);
    let (speaks, state) = (o.speaks(), o.state(now));
    let (Some(rec), Some(speaks), LinkState::Answered) = (o.rec(), speaks.clone(), state) else {
        return Ok(DonePage::State(state, speaks));
    };
    let Some(wallet) = challenge::awaiting_code(rec, cid, now) else {
        return Ok(DonePage::Elsewhere(speaks));
    };
    let shown = match (
        challenge::showing(wallet, core.pepper(), response_code, browser),
        response_code,
    ) {
        (Showing::Again, Some(rc)) => (rc, None),
        (Showing::First, Some(rc)) => (rc, Some(random_value())),
        _ => return Ok(DonePage::Elsewhere(speaks)),
    };
    let (rc, secret) = shown;
    if let Some(secret) = &secret {
        let hash = challenge::browser_hash(core.pepper(), secret);
        let tied = core.transact(team, o.interaction, now, |w| {
            let tied = challenge::tie_browser(&mut w.rec, cid, hash.clone(), now);
            Box::pin(std::future::ready(Ok(match tied {
                true => Step::Write(true),
                false => Step::Answer(false),
            })))
        });
        if !tied.await?.value {
            return Ok(DonePage::Elsewhere(speaks));
        }
    }
    let length = team.settings_for(&rec.channel).otp.length;
    let Some(bind) = links::bind::again::<links::Wallet>(core, rc, length) else {
        return Ok(DonePage::Elsewhere(speaks));
    };
    Ok(DonePage::Code(speaks, bind, secret))
}

/// `GET /w/{code}`: for the open wallet challenge the code names, a new
/// request kept on the challenge (its five newest) and indexed by its
/// key's id, and the page that hands it on; else what the link answers.
pub async fn open_wallet_link(core: &Core, code: &str, now: Timestamp) -> Result<WalletLinkTarget> {
    let o = opened(core, code, now).await?;
    let team = o.team;
    let (speaks, state) = (o.speaks(), o.state(now));
    match (state, speaks.clone()) {
        (LinkState::Open, _) => {}
        (LinkState::Answered, Some(speaks)) => return Ok(WalletLinkTarget::Elsewhere(speaks)),
        _ => return Ok(WalletLinkTarget::Gone(state == LinkState::Done, speaks)),
    }
    // Each fetch costs a key, a signature and a record: ten a minute.
    let fetches = keys::wallet_page_fetches(&team.keyspace, code);
    if !crate::gateway::code_entry::take_one(core, team, fetches, now).await? {
        return Ok(WalletLinkTarget::Limited(speaks));
    }
    // Its id marked with the team's slot: an answer is found by it alone,
    // in that slot (docs/decisions/0631-every-code-a-browser-brings-carries-its-team-s-slot.md).
    let key = RequestKey::generate(&mut rand::rngs::OsRng);
    let kid = keys::marked(&team.keyspace, key.kid());
    let key = key.named(kid);
    let made = WalletRequest {
        rid: random_value(),
        kid: key.kid().to_string(),
        state: random_value(),
        nonce: random_value(),
        key: to_b64url(&key.scalar()),
        made_at: now,
        answered: false,
    };
    let (until, wallet) = match keep_request(core, &o, &made, now).await {
        Ok(Some(kept)) => kept,
        Ok(None) => return Ok(WalletLinkTarget::Gone(false, speaks)),
        Err(Error::NotFound(_)) => return Ok(WalletLinkTarget::Gone(false, None)),
        Err(e) => return Err(e),
    };
    index_key(core, &o, code, &made.kid, until, now).await?;
    let page = page_of(core, &o, (code, &wallet, &made, &key), until, now)?;
    let rec = o.rec();
    let rec = rec.ok_or_else(|| Error::internal("an open challenge of no interaction"))?;
    Ok(WalletLinkTarget::Page(WalletPage {
        speaks: speaks.ok_or_else(|| Error::internal("an open challenge of no interaction"))?,
        named: links::named(core, team, rec),
        ..page
    }))
}

/// Keeps `made` on the link's open challenge in one commit, and forgets
/// the records of the requests that went for it (beyond the five
/// newest): the challenge's end and its wallet state as it was; `None`
/// when it is no longer open.
async fn keep_request(
    core: &Core,
    o: &Opened<'_>,
    made: &WalletRequest,
    now: Timestamp,
) -> Result<Option<(Timestamp, WalletChallenge)>> {
    let cid = o.challenge;
    let done = core
        .transact(o.team, o.interaction, now, |w| {
            let made = made.clone();
            Box::pin(async move {
                let until = w.rec.open_challenge(now).map(|c| c.expires_at);
                let wallet = w.rec.challenge.as_ref().and_then(|c| c.wallet().cloned());
                match challenge::add_request(&mut w.rec, cid, made, now) {
                    Some(gone) => Ok(Step::Write(until.zip(wallet).map(|k| (k, gone)))),
                    None => Ok(Step::Answer(None)),
                }
            })
        })
        .await?;
    let Some((kept, gone)) = done.value else {
        return Ok(None);
    };
    for kid in gone {
        let key = keys::wallet_key(&kid);
        let keys = std::slice::from_ref(&key);
        let forgot = change::once(core, &o.team.keyspace, keys, now, |c| {
            let read = c.read::<StoredWalletKey>(&key)?;
            if read.value.is_none() {
                return Ok(Step::Answer(()));
            }
            c.delete(&read);
            Ok(Step::Write(()))
        });
        forgot.await?;
    }
    Ok(Some(kept))
}

/// Indexes request key `kid` → the challenge and link, until the
/// challenge's end and a minute more.
async fn index_key(
    core: &Core,
    o: &Opened<'_>,
    code: &str,
    kid: &str,
    until: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let index = StoredWalletKey {
        t: o.team.id.clone(),
        i: o.interaction,
        c: o.challenge,
        w: code.to_string(),
    };
    let ttl = until.since(now) + Duration::from_secs(60);
    let key = keys::wallet_key(kid);
    let saved = change::once(core, &o.team.keyspace, &[], now, |c| {
        c.claim(&key, &index, Some(ttl))?;
        Ok(Step::Write(()))
    });
    saved
        .await?
        .ok_or_else(|| Error::internal("a request key's id collided"))
}

/// The page of request `made` (its key `key`) of wallet challenge
/// `wallet`, of link `code`.
fn page_of(
    core: &Core,
    o: &Opened<'_>,
    (code, wallet, made, key): (&str, &WalletChallenge, &WalletRequest, &RequestKey),
    until: Timestamp,
    now: Timestamp,
) -> Result<WalletPage> {
    let public_url = &core.config().server.public_url;
    let origins = [page_origin(public_url)];
    let authorities = authorities(core, o, wallet, now);
    let credentials = queries(o.needs, wallet, &authorities)?;
    let asked = Request {
        client_id: &o.needs.client_id,
        mode: Mode::DcApi {
            expected_origins: &origins,
        },
        state: &made.state,
        nonce: &made.nonce,
        credentials: &credentials,
        key,
        wallet_nonce: None,
        registration: o.needs.registration.as_deref(),
        transaction_data: wallet.transaction_data.as_deref(),
        now,
    };
    let dc_request = request::sign(&asked, &o.needs.signer);
    let request_uri = format!("{public_url}/w/{code}/request/{}", made.rid);
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let wallet_link = format!(
        "{}?client_id={}&request_uri={}&request_uri_method=post",
        o.needs.invocation,
        enc(&o.needs.client_id),
        enc(&request_uri),
    );
    Ok(WalletPage {
        speaks: Speaks {
            team: String::new(),
            channel: String::new(),
            locale: String::new(),
        },
        named: Named {
            team_name: String::new(),
            channel_words: "",
        },
        dc_request,
        wallet_link,
        left: until.since(now),
    })
}

/// The page's origin: the Digital Credentials API's `expected_origins`,
/// and what its SessionTranscript names.
pub(super) fn page_origin(public_url: &str) -> String {
    url::Url::parse(public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// Where a wallet posts its answer (`direct_post.jwt`'s `response_uri`).
pub(super) fn response_uri(public_url: &str) -> String {
    format!("{public_url}/w/response")
}

/// The DCQL credentials of what `wallet` asks: each credential asked (all
/// still the team's), with the `match` claims by its own names and
/// `authorities`, in the same order, as its `trusted_authorities`.
fn queries<'c>(
    config: &'c WalletConfig,
    wallet: &'c WalletChallenge,
    authorities: &'c [Vec<String>],
) -> Result<Vec<Credential<'c>>> {
    wallet
        .credentials()
        .into_iter()
        .zip(authorities)
        .map(|(id, authorities)| {
            let credential = config.credential(Some(id)).ok_or(Error::TokenExpired)?;
            let mut query = credential.query(wallet.asked.keys());
            query.authorities = authorities;
            Ok(query)
        })
        .collect()
}

/// The Subject Key Identifiers of each credential `wallet` asks, in its
/// order: its trusted issuers' and its trusted lists' issuance services'
/// (docs/wallet.md#trusted-lists).
fn authorities(
    core: &Core,
    o: &Opened<'_>,
    wallet: &WalletChallenge,
    now: Timestamp,
) -> Vec<Vec<String>> {
    wallet
        .credentials()
        .into_iter()
        .map(|id| match o.needs.credential(Some(id)) {
            Some(c) => super::trusted::authorities(core, (&o.team.id, o.needs), c, now),
            None => Vec::new(),
        })
        .collect()
}

/// Why a request object is not served: 400, nothing changes.
pub const NO_REQUEST: &str = "no open request of this link";

/// `POST`/`GET /w/{code}/request/{rid}`: the signed request object of the
/// open request `rid` of the link's open challenge (`direct_post.jwt`),
/// with the wallet's `wallet_nonce` when its POST carried one; fetched
/// again as often as asked until it is answered. An answered, expired,
/// replaced or unknown request (or link) is 400 `invalid_request`.
pub async fn request_object(
    core: &Core,
    (code, rid): (&str, &str),
    wallet_nonce: Option<&str>,
    now: Timestamp,
) -> Result<String> {
    let refused = || Error::BadRequest(NO_REQUEST.into());
    let o = match opened(core, code, now).await {
        Ok(o) => o,
        Err(Error::NotFound(_)) => return Err(refused()),
        Err(e) => return Err(e),
    };
    let rec = o.rec().ok_or_else(refused)?;
    let wallet = challenge::open_wallet(rec, o.challenge, now).ok_or_else(refused)?;
    let made = wallet.open_request(rid).ok_or_else(refused)?;
    if now
        >= made
            .made_at
            .plus(Duration::from_secs(request::LIFETIME.unsigned_abs()))
    {
        return Err(refused());
    }
    let key = b64url(&made.key)
        .and_then(|d| RequestKey::from_scalar(&d))
        .map(|k| k.named(made.kid.clone()))
        .ok_or_else(|| Error::internal("a wallet request's key cannot be read"))?;
    let authorities = authorities(core, &o, wallet, now);
    let credentials = queries(o.needs, wallet, &authorities).map_err(|_| refused())?;
    let response_uri = response_uri(&core.config().server.public_url);
    let asked = Request {
        client_id: &o.needs.client_id,
        mode: Mode::DirectPost {
            response_uri: &response_uri,
        },
        state: &made.state,
        nonce: &made.nonce,
        credentials: &credentials,
        key: &key,
        wallet_nonce,
        registration: o.needs.registration.as_deref(),
        transaction_data: wallet.transaction_data.as_deref(),
        // The object lives as long as its request, from when it was made.
        now: made.made_at,
    };
    Ok(request::sign(&asked, &o.needs.signer))
}
