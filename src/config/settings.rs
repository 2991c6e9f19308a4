//! What a channel file may override in the text it sends: its
//! `[templates]`. The settings themselves are the domain's
//! (`domain::settings`); `config` reads the files into them.
use serde::{Deserialize, Serialize};

/// A channel file's `[templates]`: any purpose may be overridden; `subject`
/// is the e-mail subject of `smtp` channels.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateOverrides {
    pub login_link: Option<String>,
    pub otp: Option<String>,
    pub pin_prompt: Option<String>,
    pub authenticated: Option<String>,
    pub expired: Option<String>,
    pub subject: Option<String>,
}
