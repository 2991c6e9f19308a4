//! The rules of authentication: plain types and functions that take `now`
//! and know nothing of HTTP, Redis or providers.
pub mod abuse;
pub mod app_challenge;
pub mod assertion;
pub mod assertion_verdict;
pub mod assurance;
pub mod attempts;
pub mod audit;
pub mod audit_keys;
pub mod bot_turn;
pub mod bsuid;
pub mod challenge;
pub mod characters;
pub mod console_session;
pub mod customer_refs;
pub mod delivery_status;
pub mod destination;
pub mod destination_policy;
pub mod devices;
pub mod input;
pub mod interaction;
pub mod ladder;
pub mod locale;
pub mod login;
pub mod login_token;
pub mod logout;
pub mod number_check;
pub mod numeric_date;
pub mod origins;
pub mod otp;
pub mod phone;
pub mod pin;
pub mod recognition;
pub mod reveal;
pub mod secrets;
pub mod settings;
pub mod sms_segments;
pub mod start_challenge;
pub mod subject;
pub mod transaction;
pub mod verify_challenge;
pub mod voice;
pub mod webhook_sig;

#[cfg(test)]
pub(crate) mod proptests;
