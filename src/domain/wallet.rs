//! Credentials from the customer's wallet (docs/wallet.md): the verifier's
//! core on plain values. An SD-JWT VC presentation is verified
//! ([`sd_jwt::verify`]) against the trusted issuers ([`issuers`]) and the
//! request's `client_id` and `nonce`, at a `now` given; its claims are
//! compared with what the bank expects ([`matching::compare`]); the wallet's
//! encrypted answer is opened with the request's key ([`response`],
//! [`request_key`]); the request itself is signed ([`request::sign`]). An
//! mdoc's `DeviceResponse` is verified by [`mdoc::verify`]; a credential's
//! Token Status List is read and its entry checked by [`status_list`]. A
//! payment's `transaction_data` is written, and its Key Binding JWT
//! checked, by [`payment`]; a customer's attestations registered for
//! payments are kept by [`registration`]'s rules. A wallet's answer is
//! judged by [`answer`]: its request key's id read, its presentation
//! verified for the mode it came by, its payment and claims checked.
//! Nothing here reads the clock, the store or the network.
pub mod access;
pub mod answer;
pub mod challenge;
pub mod disclosures;
pub mod invalid;
pub mod issuers;
pub mod jose;
pub mod matching;
pub mod mdoc;
pub mod outcome;
pub mod payment;
pub mod registration;
pub mod request;
pub mod request_key;
pub mod response;
pub mod sd_jwt;
pub mod status_list;
pub mod trusted_list;

pub use super::wallet_format::Format;

#[cfg(test)]
mod tests;
