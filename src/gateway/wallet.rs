//! The wallet's and the browser's side of a wallet challenge
//! (docs/wallet.md): `GET /w/{code}` makes a fresh request and shows the
//! page that hands it to the Digital Credentials API or to a wallet by
//! an `openid4vp://` link or QR code; `/w/{code}/request/{rid}` serves
//! the signed request object; the wallet's encrypted answer comes to
//! `/w/response` (or the page's to `/w/{code}/response`), is opened,
//! verified, compared and applied to the challenge: a verified one waits
//! for the binding code shown only where the answer came back (the page
//! that posted it, or the `redirect_uri` the wallet opens, tied to the
//! first browser that opens it) to be typed into the chat;
//! `/w/{code}/status` and `/w/{code}/done` say where it stands.
//!
//! [`link`] reads a link and makes and serves requests; [`answer`] takes
//! an answer; [`status_list`] is where a credential's status is checked;
//! [`payment`] uses a payment's authentication code once; [`trusted`] is
//! what a credential's issuer and status lists must reach.
mod answer;
mod link;
mod payment;
mod status_list;
mod trusted;

pub use answer::{take_answer, AnswerRefusal, Answered, WalletPost};
pub use link::{
    done_page, link_state, open_wallet_link, request_object, DonePage, LinkState, WalletLinkTarget,
    WalletPage, NO_REQUEST,
};
pub use trusted::{
    lists_in_force, run_trusted_lists, verify_own_all, verify_own_written, OwnLists, ROUND,
};
