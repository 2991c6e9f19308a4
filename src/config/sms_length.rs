//! The SMS length of every text that can go through a `twilio` channel
//! (docs/configuration.md#sms-length): one enumeration of those texts
//! ([`sms_texts`]), the load-time check over it and the rows
//! `chatgate check-texts` prints. Where a text goes is a `match` naming
//! every purpose, a page's link by its row of `Page::link`.
#![deny(clippy::wildcard_enum_match_arm)]
use std::collections::BTreeMap;

use super::validate::{at_longest, longest_short_url, written_at};
use super::{ChannelConfig, Config, ConfigError, Settings, Team};
use crate::channels::Purpose;
use crate::domain::challenge::Section;
use crate::domain::sms_segments::{self, Segments};

/// One text a team can send through a `twilio` channel, its placeholders
/// at their longest.
pub(super) struct SmsText<'a> {
    pub team: &'a Team,
    /// The channel of the interactions it is sent for: its settings apply.
    pub source: &'a str,
    /// The `twilio` channel it goes through.
    pub channel: &'a ChannelConfig,
    pub tag: &'a str,
    pub purpose: Purpose,
    pub segments: Segments,
    /// `locale.max_sms_segments` of the settings in force; 0: no limit.
    pub max_segments: u32,
}

impl SmsText<'_> {
    fn over(&self) -> bool {
        self.max_segments > 0 && self.segments.count > self.max_segments as usize
    }
}

/// The languages texts are kept in for interactions under `settings`.
fn languages(settings: &Settings) -> impl Iterator<Item = &str> {
    settings.locale.supported.iter().map(String::as_str)
}

/// The text of `purpose` in language `tag` that interactions under
/// `settings` send through `channel` (docs/configuration.md#languages).
fn text_in<'a>(
    tag: &str,
    purpose: Purpose,
    settings: &'a Settings,
    channel: &'a ChannelConfig,
) -> &'a str {
    super::text(purpose.key(), settings, Some(channel), tag)
}

/// Every (team, channel, language, key) whose text can go through a
/// `twilio` channel: for each of a team's channels as the interaction's,
/// the channel itself, the team's `sms_channel` and the steps of its
/// `otp.ladder`, each carrying the texts that can be sent there
/// ([`goes`]). `#PIN#` is `otp.length` digits, `#URL#` the longest short
/// URL, `#MINUTES#` the longest `otp.ttl` of codes through the channel.
pub(super) fn sms_texts(config: &Config) -> Vec<SmsText<'_>> {
    let url = longest_short_url(&config.server.public_url);
    let mut out = Vec::new();
    for team in config.teams.values() {
        for (source, settings) in team.settings_by_channel() {
            for target in twilio_targets(config, team, source, settings) {
                let channel = target.channel;
                let ttl = team
                    .otp_ttl_through(&channel.name)
                    .max(settings.otp.ttl.get());
                let minutes = ttl.as_secs().div_ceil(60).to_string();
                let pin = settings.otp.length as usize;
                let sent = Purpose::ALL
                    .into_iter()
                    .filter(|&p| target.carries(goes(p, team)));
                let sent: Vec<Purpose> = sent.collect();
                for tag in languages(settings) {
                    for &purpose in &sent {
                        let text = text_in(tag, purpose, settings, channel);
                        out.push(SmsText {
                            team,
                            source,
                            channel,
                            tag,
                            purpose,
                            segments: sms_segments::count(&at_longest(text, &url, pin, &minutes)),
                            max_segments: settings.locale.max_sms_segments,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Where a team's text of one purpose can be sent
/// (docs/configuration.md#sms-length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goes {
    /// Into the conversation, to the team's `sms_channel` and through the
    /// steps of its `otp.ladder`.
    Everywhere,
    /// Into the conversation, or to the number through `sms_channel`
    /// (`delivery` `sms`).
    ConversationOrSms,
    /// Into the conversation only.
    Conversation,
    /// Nowhere: the team cannot ask for what sends it.
    Nowhere,
}

/// Where `team` can send the text of `purpose`: a page's link where the
/// page says ([`crate::domain::challenge::Page::link`]): nowhere without the section the page needs
/// (`[number_verification]`, `[wallet]`), else into the conversation and,
/// for a link that may go to the number, through `sms_channel`; the PIN's
/// link to the code-entry page into the conversation alone. Every
/// purpose is named, so a new one does not build until it is placed.
fn goes(purpose: Purpose, team: &Team) -> Goes {
    match purpose {
        Purpose::LoginLink
        | Purpose::Otp
        | Purpose::PinPrompt
        | Purpose::Authenticated
        | Purpose::Expired
        | Purpose::AppPrompt => Goes::Everywhere,
        Purpose::Link(page) => {
            let link = page.link();
            if !link.needs.is_none_or(|section| has(team, section)) {
                Goes::Nowhere
            } else if link.to_number {
                Goes::ConversationOrSms
            } else {
                Goes::Conversation
            }
        }
        Purpose::PinEntryLink => Goes::Conversation,
    }
}

/// Whether `team` has `section` of the team file.
fn has(team: &Team, section: Section) -> bool {
    match section {
        Section::NumberVerification => team.number_verification.is_some(),
        Section::Wallet => team.wallet.is_some(),
    }
}

/// A `twilio` channel a message for an interaction can go through, and
/// the parts it plays for it.
struct Target<'a> {
    channel: &'a ChannelConfig,
    /// The interaction's own channel: its conversation.
    conversation: bool,
    /// The team's `sms_channel`.
    sms: bool,
}

impl Target<'_> {
    /// Whether a text that `goes` so can be sent through this channel.
    fn carries(&self, goes: Goes) -> bool {
        match goes {
            Goes::Everywhere => true,
            Goes::ConversationOrSms => self.conversation || self.sms,
            Goes::Conversation => self.conversation,
            Goes::Nowhere => false,
        }
    }
}

/// The `twilio` channels a message for an interaction on `source` can go
/// through: the conversation's own, the team's `sms_channel`, the steps
/// of `otp.ladder`.
fn twilio_targets<'a>(
    config: &'a Config,
    team: &'a Team,
    source: &'a str,
    settings: &'a Settings,
) -> Vec<Target<'a>> {
    let mut names: Vec<&str> = std::iter::once(source)
        .chain(team.sms_channel.as_deref())
        .chain(settings.otp.ladder.iter().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| config.channels.get(n))
        .filter(|c| c.kind.info().sms_segments)
        .map(|channel| Target {
            channel,
            conversation: channel.name == source,
            sms: team.sms_channel.as_deref() == Some(channel.name.as_str()),
        })
        .collect()
}

/// Refuses a text longer than `locale.max_sms_segments`, naming the file
/// and key that wrote it, the language, the channel and the count.
pub(super) fn check(config: &Config) -> Result<(), ConfigError> {
    let Some(t) = sms_texts(config).into_iter().find(SmsText::over) else {
        return Ok(());
    };
    let (file, key) = written_at(config, t.team, t.source, t.channel, (t.purpose, t.tag));
    Err(ConfigError::new(
        &file,
        key,
        format!(
            "is {} SMS segments ({}) at its longest in language {:?} through twilio channel {:?} \
             (team {:?}); locale.max_sms_segments is {}",
            t.segments.count,
            t.segments.encoding.as_str(),
            t.tag,
            t.channel.name,
            t.team.id,
            t.max_segments
        ),
    ))
}

/// One line of `chatgate check-texts`: a channel, language and key, at
/// the most segments any team's text for it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRow {
    pub channel: String,
    pub tag: String,
    pub key: &'static str,
    pub encoding: &'static str,
    pub segments: usize,
    /// More than some team's `locale.max_sms_segments`.
    pub over: bool,
}

/// The rows of `chatgate check-texts`, by channel, language and key.
pub fn text_rows(config: &Config) -> Vec<TextRow> {
    let mut rows: BTreeMap<(String, String, &'static str), TextRow> = BTreeMap::new();
    for t in sms_texts(config) {
        let key = t.purpose.as_str();
        let id = (t.channel.name.clone(), t.tag.to_string(), key);
        let row = rows.entry(id).or_insert_with(|| TextRow {
            channel: t.channel.name.clone(),
            tag: t.tag.to_string(),
            key,
            encoding: t.segments.encoding.as_str(),
            segments: t.segments.count,
            over: false,
        });
        if t.segments.count > row.segments {
            row.segments = t.segments.count;
            row.encoding = t.segments.encoding.as_str();
        }
        row.over |= t.over();
    }
    rows.into_values().collect()
}
