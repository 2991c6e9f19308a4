//! Abuse resistance, from the outside (docs/api.md#where-an-otp-may-go and
//! docs/api.md#lockouts-a-stranger-cannot-turn-against-the-customer): where
//! an OTP may go, on both stores.
mod destinations;
mod origins;
mod phones;
