//! What a link's page says of where it belongs: whose language it
//! speaks ([`Speaks`]) and the team and channel it names ([`Named`]).
use crate::config::Team;
use crate::domain::interaction::InteractionRecord;
use crate::gateway::Core;

/// Whose language a page speaks: a team's channel, in `locale` (an entry
/// of its `supported`; docs/api.md#languages).
#[derive(Debug, Clone)]
pub struct Speaks {
    pub team: String,
    pub channel: String,
    pub locale: String,
}

/// What a page of a link names, so that a link relayed out of its
/// conversation says where it belongs: the team (its `display_name`,
/// else its id) and the conversation's channel in words
/// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
#[derive(Debug, Clone)]
pub struct Named {
    pub team_name: String,
    pub channel_words: &'static str,
}

/// What the pages of `rec`'s links name.
pub fn named(core: &Core, team: &Team, rec: &InteractionRecord) -> Named {
    let words = core.config().channels.get(&rec.channel);
    Named {
        team_name: team.display_name.clone().unwrap_or_else(|| team.id.clone()),
        channel_words: words.map_or("chat", |c| c.kind.in_words()),
    }
}

/// The language `rec`'s pages speak.
pub fn speaks(team: &Team, rec: &InteractionRecord) -> Speaks {
    Speaks {
        team: team.id.clone(),
        channel: rec.channel.clone(),
        locale: rec
            .locale(&team.settings_for(&rec.channel).locale)
            .to_string(),
    }
}
