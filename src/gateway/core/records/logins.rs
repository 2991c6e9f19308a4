//! The stored form of a login link's hosted logins under way
//! (`o:<tag of the link>`, docs/api.md#hosted-login-openid-connect): the
//! started logins themselves are `crate::oidc::states::LinkStates`, whose
//! serde form (each login's state digest and `crate::oidc::flow::Flow`,
//! the form the console's sign-in shares) is what the store keeps. Pinned
//! by the bytes tests in `tests.rs`.
use super::Record;
use crate::oidc::states::LinkStates;

impl Record for LinkStates {}
