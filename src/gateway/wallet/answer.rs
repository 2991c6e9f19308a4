//! A wallet's answer taken (docs/wallet.md#the-response): the compact JWE
//! finds its request by its key's id, is opened with that request's key,
//! and its presentation is verified and its claims compared on plain
//! values (`domain::wallet::answer`), its status checked
//! ([`super::status_list`]); the result is applied to the challenge in
//! one commit (`domain::wallet::challenge::conclude`) with what it
//! announces. Every refusal before that commit changes nothing. Claim
//! values go nowhere but the challenge's record: never an event, a log
//! line or a trace.
use std::time::Duration;

use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::link::{page_origin, response_uri, LinkState};
use super::status_list::credential_status;
use super::trusted::trust_of;
use crate::config::{InvalidAnswer, Purpose, Team, WalletConfig, WalletCredential};
use crate::domain::otp::OtpCode;
use crate::domain::wallet::answer::{self, Asked, Came, Expected};
use crate::domain::wallet::challenge::{
    self, Binding, Ending, Presented, Refused, WalletAnswer, WalletChallenge, WalletRequest,
    WalletResult,
};
use crate::domain::wallet::issuers::TrustedIssuers;
use crate::domain::wallet::jose::{b64url, Object};
use crate::domain::wallet::outcome::Outcome;
use crate::domain::wallet::request::LIFETIME;
use crate::domain::wallet::request_key::RequestKey;
use crate::domain::wallet::{response, Format};
use crate::error::Error;
use crate::events::types::{ChallengeFailed, FailedChallenge};
use crate::events::EventData;
use crate::gateway::records::StoredWalletKey;
use crate::gateway::registrations::{holder_of, Holder};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::gateway::{change, links};
use crate::oidc::flow::random_value;
use crate::store::keys;
use crate::time::Timestamp;

/// What was posted.
#[derive(Debug, Clone, Copy)]
pub enum WalletPost<'a> {
    /// `POST /w/response` (`direct_post.jwt`): the form's `response` (a
    /// JWE); `None` when the form carries an `error` instead.
    DirectPost { response: Option<&'a str> },
    /// `POST /w/{code}/response`: the Digital Credentials API's JWE;
    /// `None` when the browser's call was refused.
    DcApi {
        code: &'a str,
        response: Option<&'a str>,
    },
}

/// What an answer came to: where the wallet goes next (`direct_post`),
/// where the challenge stands, and for a verified answer through the
/// page (the Digital Credentials API) the binding code that page shows
/// (docs/wallet.md#the-code-typed-into-the-chat).
#[derive(Debug, Clone)]
pub struct Answered {
    pub redirect_uri: Option<String>,
    pub state: LinkState,
    pub code: Option<OtpCode>,
    /// A failed `direct_post` answer of a team whose `invalid_answer` is
    /// `error`: 400 `{"error": "invalid_request"}`, no `redirect_uri`.
    pub invalid_request: bool,
}

/// Why an answer changed nothing.
#[derive(Debug)]
pub enum AnswerRefusal {
    /// 400: a JWE of no open request (unknown, replaced, expired or
    /// answered already), one that does not open, or a malformed body.
    BadRequest(&'static str),
    /// 502: the credential's status list could not be read, or a trusted
    /// list its issuer needs has no usable copy; the challenge stays open.
    StatusList,
    /// 503 `overloaded`: as many of the team's answers as its gate holds are in
    /// flight (each may wait on a status list): nothing changes.
    Busy,
    /// The store.
    Store(Error),
}

impl From<Error> for AnswerRefusal {
    fn from(e: Error) -> Self {
        AnswerRefusal::Store(e)
    }
}

type Taken<T> = std::result::Result<T, AnswerRefusal>;

/// A request found by its key's id, with all it is checked against.
struct Found<'c> {
    team: &'c Team,
    wallet: &'c WalletConfig,
    index: StoredWalletKey,
    asked: WalletChallenge,
    request: WalletRequest,
    /// The interaction's `customer_ref`, whose registered attestations a
    /// payment may need.
    customer_ref: Option<String>,
}

/// `POST /w/response` and `POST /w/{code}/response`: the answer applied
/// to its challenge. A wallet's own error changes nothing and counts
/// nothing. Once its request is found, the answer takes a place at its
/// team's gate (`admit`, `None` when the gate is full: [`AnswerRefusal::Busy`]),
/// held while it may wait on the credential's status list, so that a list
/// that hangs holds only its own team's answers.
pub async fn take_answer<P>(
    core: &Core,
    post: WalletPost<'_>,
    now: Timestamp,
    admit: impl FnOnce(&str) -> Option<P>,
) -> Taken<Answered> {
    let (jwe, code) = match post {
        WalletPost::DirectPost { response } => (response, None),
        WalletPost::DcApi { code, response } => (response, Some(code)),
    };
    let Some(jwe) = jwe else {
        tracing::info!("a wallet answered an error: nothing counted");
        return Ok(Answered {
            redirect_uri: None,
            state: LinkState::Open,
            code: None,
            invalid_request: false,
        });
    };
    let found = find(core, jwe, code, now).await?;
    let Some(_place) = admit(&found.team.id) else {
        return Err(AnswerRefusal::Busy);
    };
    let opened = open(jwe, &found.request)?;
    let direct = code.is_none();
    let (answer, presented, holder) = presentation(core, &found, &opened, direct, now).await?;
    let result = answer.result;
    let format = presented.map_or(found.asked.format, |c| c.format).as_str();
    let presented = presented.map(|c| (c.id.clone(), c.format));
    let (id, cid) = (found.index.i, found.index.c);
    let kid = found.request.kid.clone();
    // A direct_post answer's redirect names a fresh response_code, and
    // only it shows the binding code.
    let response_code = direct.then(random_value);
    let rc = response_code.as_deref();
    let concluded = conclude(
        core,
        found.team,
        (id, cid, &kid),
        (answer, presented, rc),
        holder,
        now,
    )
    .await?;
    let (ending, code) =
        concluded.map_err(|_| AnswerRefusal::BadRequest("no open request for this key"))?;
    metrics::counter!("chatgate_wallet_presentations_total", "format" => format, "result" => result.as_str())
        .increment(1);
    tracing::info!(team = %found.team.id, result = result.as_str(), "a wallet presentation was answered");
    Ok(answered(core, &found, (ending, code), rc))
}

/// What the poster of an answer that ended as `ending` is told: a
/// `direct_post` answer (one with a `response_code` `rc`) the
/// `redirect_uri` that shows its binding code, or its failure; with
/// `invalid_answer = "error"` a failed one instead `invalid_request`, no
/// `redirect_uri` (docs/wallet.md#results). The page that posted a Digital
/// Credentials API answer where the challenge stands and its binding code.
fn answered(
    core: &Core,
    found: &Found<'_>,
    (ending, code): (Ending, Option<OtpCode>),
    rc: Option<&str>,
) -> Answered {
    let state = match ending {
        Ending::AwaitingCode => LinkState::Answered,
        Ending::Failed { .. } => LinkState::Failed,
        Ending::Open => LinkState::Open,
    };
    let direct = rc.is_some();
    let invalid_request =
        direct && state == LinkState::Failed && found.wallet.invalid_answer == InvalidAnswer::Error;
    let public_url = &core.config().server.public_url;
    let link = &found.index.w;
    Answered {
        redirect_uri: rc
            .filter(|_| !invalid_request)
            .map(|rc| format!("{public_url}/w/{link}/done?response_code={rc}")),
        state,
        code: code.filter(|_| !direct),
        invalid_request,
    }
}

/// The open request the JWE's `kid` names (of link `code`, when the
/// answer came through the page), with its team and challenge.
async fn find<'c>(
    core: &'c Core,
    jwe: &str,
    code: Option<&str>,
    now: Timestamp,
) -> Taken<Found<'c>> {
    let bad = AnswerRefusal::BadRequest;
    let kid = answer::kid_of(jwe).map_err(bad)?;
    let kid = kid.as_str();
    let key = keys::wallet_key(kid);
    let read = change::read(core, std::slice::from_ref(&key)).await?;
    let index = read.get::<StoredWalletKey>(&key).ok().and_then(|k| k.value);
    let index = index.ok_or(bad("no open request for this key"))?;
    if let Some(code) = code {
        if !bool::from(code.as_bytes().ct_eq(index.w.as_bytes())) {
            return Err(bad("no open request of this link for this key"));
        }
    }
    let team = core.config().team(&index.t);
    let Some((team, wallet)) = team.and_then(|t| Some((t, t.wallet.as_ref()?))) else {
        return Err(bad("no open request for this key"));
    };
    let pair = match core.load_pair(team, index.i, now).await {
        Ok(pair) => pair,
        Err(Error::NotFound(_)) => return Err(bad("no open request for this key")),
        Err(e) => return Err(e.into()),
    };
    let rec = pair.rec()?;
    let asked =
        challenge::open_wallet(rec, index.c, now).ok_or(bad("no open request for this key"))?;
    let request = asked
        .request_for_key(kid)
        .ok_or(bad("no open request for this key"))?;
    // A request lives as long as its signed object says.
    let lifetime = Duration::from_secs(LIFETIME.unsigned_abs());
    if now >= request.made_at.plus(lifetime) {
        return Err(bad("the request has expired"));
    }
    Ok(Found {
        team,
        wallet,
        request: request.clone(),
        asked: asked.clone(),
        customer_ref: rec.customer_ref.clone(),
        index,
    })
}

/// The JWE opened with `request`'s key: 400 when it does not open.
fn open(jwe: &str, request: &WalletRequest) -> Taken<Object> {
    let key = b64url(&request.key)
        .and_then(|d| RequestKey::from_scalar(&d))
        .map(|k| k.named(request.kid.clone()))
        .ok_or_else(|| Error::internal("a wallet request's key cannot be read"))?;
    response::open(jwe, &key).map_err(|why| {
        tracing::info!(reason = %why, "a wallet answer did not open");
        AnswerRefusal::BadRequest("the JWE does not open with the request's key")
    })
}

/// The answer `opened` holds, verified: its presentation (of exactly one
/// of the credentials asked, which it names when it does), its status
/// and its claims against what the challenge expects. `direct`: it came
/// by `direct_post.jwt`, whose payload names the request's `state`.
async fn presentation<'c>(
    core: &Core,
    found: &Found<'c>,
    opened: &Object,
    direct: bool,
    now: Timestamp,
) -> Taken<(WalletAnswer, Option<&'c WalletCredential>, Holder)> {
    let invalid = |why: &str| {
        tracing::info!(reason = why, "a wallet presentation is invalid");
        let answer = answer::refused(WalletResult::InvalidPresentation, None, now);
        (answer, None, Holder::default())
    };
    if direct {
        let state = opened.get("state").and_then(serde_json::Value::as_str);
        let same =
            state.is_some_and(|s| bool::from(s.as_bytes().ct_eq(found.request.state.as_bytes())));
        if !same {
            return Ok(invalid("state"));
        }
    }
    let asked = found.asked.credentials();
    let (id, list) = match response::presentations(opened, &asked) {
        Ok(presented) => presented,
        Err(why) => return Ok(invalid(&why.to_string())),
    };
    let credential = found
        .wallet
        .credential(Some(id))
        .ok_or(AnswerRefusal::BadRequest(
            "the credential asked for is no longer the team's",
        ))?;
    let [presented] = list[..] else {
        return Ok(invalid("more than one presentation"));
    };
    let (answer, holder) = verified(core, found, credential, (presented, direct), now).await?;
    Ok((answer, Some(credential), holder))
}

/// `presented`, a presentation of `credential`, verified, its status
/// checked and its claims compared.
async fn verified(
    core: &Core,
    found: &Found<'_>,
    credential: &WalletCredential,
    (presented, direct): (&str, bool),
    now: Timestamp,
) -> Taken<(WalletAnswer, Holder)> {
    let refused = |result, issuer| (answer::refused(result, issuer, now), Holder::default());
    let invalid = |why: &str| {
        tracing::info!(reason = why, "a wallet presentation is invalid");
        refused(WalletResult::InvalidPresentation, None)
    };
    let public_url = &core.config().server.public_url;
    let trust = trust_of(core, (found.team, found.wallet), credential, now).await;
    let trusting = (credential, &trust.issuers);
    let verified = match verify(found, trusting, public_url, (presented, direct), now) {
        Outcome::Verified(v) => v,
        // A list it needs has no usable copy: never taken as empty.
        Outcome::UntrustedIssuer if trust.missing => return Err(AnswerRefusal::StatusList),
        Outcome::UntrustedIssuer => return Ok(refused(WalletResult::UntrustedIssuer, None)),
        Outcome::InvalidPresentation(why) => return Ok(invalid(why.as_str())),
    };
    let sca = (credential.purpose == Purpose::Sca, &verified.key_binding);
    let sca = match answer::paying(&found.asked, sca.0, sca.1, direct) {
        Ok(sca) => sca,
        Err(why) => return Ok(invalid(why.as_str())),
    };
    let issuer = Some(verified.issuer.clone());
    let status = verified.status.as_ref();
    match credential_status(core, (found.wallet, &trust.status_signers), status, now).await {
        Ok(None) => {}
        Ok(Some(result)) => return Ok(refused(result, issuer)),
        Err(why) => {
            // The list's failure is logged where it is fetched, once
            // while it fails (`wallet_status`), not once per answer.
            tracing::debug!(team = %found.team.id, reason = why.0, "a credential's status list cannot be read: the challenge stays open");
            return Err(AnswerRefusal::StatusList);
        }
    }
    let (asked, own_name) = (&found.asked.asked, |name: &str| credential.own_name(name));
    let answer = answer::compared(asked, own_name, &verified.claims, (issuer, now));
    let customer = (found.customer_ref.as_deref(), &found.asked);
    let held = holder_of(core, found.team, customer, &verified, answer);
    let (answer, holder) = held.await?;
    match (answer.result, sca) {
        (WalletResult::Verified, Some(sca)) => {
            let answer = super::payment::used_once(core, found.team, answer, sca, now).await?;
            Ok((answer, holder))
        }
        _ => Ok((answer, holder)),
    }
}

/// `presented`, a presentation of `credential`, verified against what
/// `found`'s request asked, for the mode it came by (`direct`:
/// `direct_post.jwt`, to the `response_uri`; else on the page's origin).
fn verify(
    found: &Found<'_>,
    (credential, trusted): (&WalletCredential, &TrustedIssuers),
    public_url: &str,
    (presented, direct): (&str, bool),
    now: Timestamp,
) -> Outcome {
    let (origin, response_uri) = (page_origin(public_url), response_uri(public_url));
    let came = match direct {
        true => Came::Direct {
            client_id: &found.wallet.client_id,
            response_uri: &response_uri,
        },
        false => Came::DcApi { origin: &origin },
    };
    let expected = Expected {
        asked: Asked {
            format: credential.format,
            vct: &credential.vct,
            doctype: &credential.doctype,
            namespace: &credential.namespace,
        },
        trusted,
        nonce: &found.request.nonce,
        // The key's id is its thumbprint, marked with the team's slot.
        jwk_thumbprint: keys::without_mark(&found.request.kid),
        came,
    };
    answer::verify(presented, &expected, now)
}

/// Applies `answer` to the request of key `kid` of wallet challenge
/// `cid` of interaction `id` in one commit, with what it announces:
/// `challenge.failed` (`data.reason` the result) and the lockout it
/// reached; a verified answer awaits a fresh binding code, made from
/// `response_code` for a `direct_post` answer (shown by its redirect
/// alone), else drawn (shown by the page that posted it), and answered
/// with it. `Err(Refused)`: nothing was written.
async fn conclude(
    core: &Core,
    team: &Team,
    (id, cid, kid): (Uuid, Uuid, &str),
    (answer, credential, response_code): (WalletAnswer, Option<(String, Format)>, Option<&str>),
    holder: Holder,
    now: Timestamp,
) -> Taken<std::result::Result<(Ending, Option<OtpCode>), Refused>> {
    let done = core.transact(team, id, now, |w| {
        let presented = Presented::Answer(answer.clone(), credential.clone());
        let holder = holder.clone();
        Box::pin(async move {
            let s = w.settings;
            let (code, binding) = binding_for(core, cid, response_code, s.otp.length);
            let (rec, subject) = w.records();
            let concluded =
                challenge::conclude(rec, subject, (cid, kid, presented), binding, s, now);
            let mut ending = match concluded {
                Ok(ending) => ending,
                Err(refused) => return Ok(Step::Answer(Err(refused))),
            };
            let held = (holder.thumbprint, holder.not_registered);
            answer::held_by(rec, cid, &mut ending, held);
            if let Ending::Failed { reason, failure } = &ending {
                if let Some((c, _)) = w.rec.challenge_at(cid, now) {
                    w.emit(EventData::ChallengeFailed(ChallengeFailed {
                        challenge: FailedChallenge::of(c, 0),
                        reason: Some(*reason),
                    }));
                }
                if let Some(failure) = failure {
                    w.emit_lockout(failure);
                }
            }
            let code = (ending == Ending::AwaitingCode).then_some(code);
            Ok(Step::Write(Ok((ending, code))))
        })
    });
    Ok(done.await?.value)
}

/// The binding code a verified answer would wait for, with what the
/// challenge keeps of it: for a `direct_post` answer made from its
/// `response_code` (whose keyed hash is kept), else drawn.
fn binding_for(
    core: &Core,
    cid: Uuid,
    response_code: Option<&str>,
    length: u32,
) -> (OtpCode, Binding) {
    let pepper = core.pepper();
    let (code, code_hash) = links::binding::<links::Wallet>(core, cid, length, response_code);
    let binding = Binding {
        code_hash,
        response_code: response_code.map(|rc| challenge::response_code_hash(pepper, rc)),
    };
    (code, binding)
}
