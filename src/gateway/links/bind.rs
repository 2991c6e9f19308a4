//! The binding step, written once for every proof made on a page
//! (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat): the
//! operator's verified answer, a verified presentation, the right code
//! typed on the page, a login that must be confirmed in the chat. The
//! proof does not end the challenge: the page shows a binding code, only
//! its keyed hash is kept (`Challenge::await_code`), and the code typed
//! into the chat ends it. How the code is made is what its kind declares
//! ([`LinkKind::BINDS`]), not a copy per page.
use uuid::Uuid;

use super::kind::{Binds, LinkKind};
use crate::domain::otp::{self, OtpCode};
use crate::gateway::Core;

/// The binding code of kind `K`'s proof for challenge `cid`, `length`
/// digits, made as `K` declares from what the proof `carried` (the code
/// typed on the page, the answer's `response_code`), with its keyed hash:
/// all the challenge keeps.
pub fn binding<K: LinkKind>(
    core: &Core,
    cid: Uuid,
    length: u32,
    carried: Option<&str>,
) -> (OtpCode, String) {
    code(core, K::BINDS, cid, length, carried)
}

/// [`binding`] made as `binds` says.
pub fn code(
    core: &Core,
    binds: Binds,
    cid: Uuid,
    length: u32,
    carried: Option<&str>,
) -> (OtpCode, String) {
    let pepper = core.pepper();
    let derived = match (binds, carried) {
        (Binds::Drawn, typed) => return otp::binding(pepper, cid, length, typed),
        (Binds::FromResponse, None) => return otp::binding(pepper, cid, length, None),
        (Binds::FromResponse, Some(rc)) => otp::derive_for_response(pepper, rc, length),
        (Binds::FromChallenge, _) => otp::derive(pepper, cid, length),
    };
    let hash = otp::hash(pepper, cid, &derived);
    (derived, hash)
}

/// The binding code of kind `K`'s proof shown again from what the answer
/// `carried`, where `K` derives it from that; `None` where it cannot be
/// shown again.
pub fn again<K: LinkKind>(core: &Core, carried: &str, length: u32) -> Option<OtpCode> {
    match K::BINDS {
        Binds::FromResponse => Some(otp::derive_for_response(core.pepper(), carried, length)),
        Binds::Drawn | Binds::FromChallenge => None,
    }
}
