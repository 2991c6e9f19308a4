//! Every metric family the gateway exports: its type, labels and help (the
//! metrics table of docs/operations.md lists the same, and a test compares the two with
//! `/metrics`). At install each gets its `# HELP` line, and every series
//! whose labels come from a closed set is registered at 0, so an alert on
//! it has a series before the first increment; series labelled by a file
//! team or a channel are registered when a config is loaded
//! ([`register_config`]), an API team's at its first use ([`register_team`]),
//! and those of the MCP server's tools by the HTTP layer, which holds them
//! (`http::mcp::register_series`).
use crate::channels::Purpose;
use crate::config::Config;
use crate::domain::audit::Action;
use crate::domain::challenge::ChallengeMethod;
use crate::domain::interaction::Method;
use crate::domain::logout::{Receiver, RefusalReason};
use crate::domain::network_auth::NetworkResult;
use crate::domain::number_check;
use crate::events::types::AdvanceReason;
use crate::events::EventType;
use crate::number_checks::ProviderConfig;

/// The outbox metrics' `kind` label: events (to the team's webhook) and
/// chat notices.
pub const OUTBOX_KINDS: [&str; 2] = ["event", "notice"];

/// The `kind` label of `chatgate_background_queue`: the kinds of
/// background ask, each in lanes of its own (`gateway/polls.rs`).
pub const BACKGROUND_KINDS: [&str; 2] = ["ladder", "app_poll"];

/// Kind of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// `(name, kind, labels, help)` of every `chatgate_*` family.
pub const FAMILIES: &[(&str, Kind, &str, &str)] = &[
    ("chatgate_http_requests_total", Kind::Counter, "route, method, status", "HTTP requests answered, by route template, method and status code."),
    ("chatgate_http_request_duration_seconds", Kind::Histogram, "route, method, status", "Time from a request's arrival to its answer's head, by route template, method and status code."),
    ("chatgate_interactions_created_total", Kind::Counter, "", "Interactions created (not a create that found one)."),
    ("chatgate_login_links_issued_total", Kind::Counter, "", "Login links issued."),
    ("chatgate_authentications_total", Kind::Counter, "method", "Customers proven, by method."),
    ("chatgate_auth_failures_total", Kind::Counter, "kind", "Failed proofs, by kind (login_callback, assertion, challenge)."),
    ("chatgate_lockouts_total", Kind::Counter, "kind", "Subjects locked out or banned (kind subject.locked or subject.banned)."),
    ("chatgate_unlocks_total", Kind::Counter, "", "Subjects unlocked by an admin."),
    ("chatgate_audit_entries_total", Kind::Counter, "action", "Audit trail entries written, by action."),
    ("chatgate_audit_sink_lag_seconds", Kind::Gauge, "sink", "Age of the oldest audit entry not yet confirmed written to the sink (syslog) or taken by a team's audit webhook (webhook); 0 when none."),
    ("chatgate_challenges_started_total", Kind::Counter, "method", "OTP, PIN, binding and app challenges started, by method."),
    ("chatgate_ladder_advances_total", Kind::Counter, "reason", "Delivery ladders moved to their next step, by reason (failed, timeout, requested)."),
    ("chatgate_network_verifications_total", Kind::Counter, "result", "Answers of the mobile operator to network challenges' links, by result (verified, mismatch, not_on_mobile_network, error)."),
    ("chatgate_trusted_list_usable", Kind::Gauge, "team, list", "Whether a team's trusted list has a usable copy (1) or none (0)."),
    ("chatgate_trusted_list_next_update_seconds", Kind::Gauge, "team, list", "Seconds until the NextUpdate of a team's trusted list's usable copy (negative once passed; 0 until a copy was read)."),
    ("chatgate_trusted_list_fetches_total", Kind::Counter, "team, list, result", "Fetches of a team's trusted list, by result (ok, unreachable, bad_signature, bad_list, expired, rollback)."),
    ("chatgate_wallet_presentations_total", Kind::Counter, "format, result", "Presentations answered to wallet challenges, by credential format (dc+sd-jwt, mso_mdoc) and result (verified, claims_mismatch, untrusted_issuer, revoked, invalid_presentation)."),
    ("chatgate_code_entries_total", Kind::Counter, "result", "Codes and PINs posted on the page where they are typed instead of the chat, by result (right, wrong, refused: no form token of the browser's page, or more than 10 a minute)."),
    ("chatgate_mcp_calls_total", Kind::Counter, "tool, result", "Tool calls to the MCP server, by tool (start_verification, get_verification, confirm_chat_code, check_assurance) and result (ok, error: a tool result with isError)."),
    ("chatgate_number_checks_total", Kind::Counter, "kind, result", "Number checks asked of a provider (not answered from the cache), by provider kind (camara, twilio_lookup) and result (clean, swapped, forwarded, unknown, error)."),
    ("chatgate_expirations_total", Kind::Counter, "", "Authentications that ended by time (interaction.expired announced)."),
    ("chatgate_teams", Kind::Gauge, "", "Teams in the configuration in force (set at start and at each reload)."),
    ("chatgate_api_teams", Kind::Gauge, "", "Teams of the configuration in force written through the operator API (set whenever they change)."),
    ("chatgate_api_teams_refused", Kind::Gauge, "", "Teams and channels the store holds for the operator API that this instance left out: they cannot be put in force (each named by one error line)."),
    ("chatgate_background_queue", Kind::Gauge, "kind", "Background asks claimed and waiting for their turn in this instance's poller, by kind (ladder, app_poll)."),
    ("chatgate_due_quarantined_total", Kind::Counter, "", "Unreadable interaction records removed from the due queue."),
    ("chatgate_channel_messages_total", Kind::Counter, "channel, kind, purpose, outcome", "Messages sent into conversations, by channel, channel kind, purpose and outcome (ok, error)."),
    ("chatgate_channel_send_seconds", Kind::Histogram, "kind", "Time one send to a channel provider took, by channel kind."),
    ("chatgate_events_total", Kind::Counter, "type", "Events published, by type."),
    ("chatgate_event_log_dropped_total", Kind::Counter, "", "Events that did not reach the event log (queue full or Redis failing)."),
    ("chatgate_event_streams_dropped_total", Kind::Counter, "", "Live event streams ended because their reader fell behind or stopped reading (no write progress for server.write_timeout)."),
    ("chatgate_outbox_delivered_total", Kind::Counter, "team, kind", "Outbox items delivered, by team and kind (event, notice)."),
    ("chatgate_outbox_failed_attempts_total", Kind::Counter, "team, kind", "Outbox delivery attempts that failed and will be retried, by team and kind."),
    ("chatgate_outbox_given_up_total", Kind::Counter, "team, kind", "Outbox items given up after their retry period, by team and kind."),
    ("chatgate_outbox_quarantined_total", Kind::Counter, "", "Unreadable outbox items dropped."),
    ("chatgate_outbox_oldest_pending_seconds", Kind::Gauge, "team, kind", "Age of the oldest outbox item still to deliver after a failed attempt on this instance, by team and kind (event, notice); 0 when none."),
    ("chatgate_connections_open", Kind::Gauge, "", "Connections being served (within server.max_connections)."),
    ("chatgate_waiting_calls", Kind::Gauge, "", "Calls holding their connection while they wait (MCP get_verification waits, requests waiting on a team's provider), within server.max_waits."),
    ("chatgate_connections_shed_total", Kind::Counter, "", "Connections over server.max_connections: answered 503, closed unanswered, or closed to make room."),
    ("chatgate_accept_errors_total", Kind::Counter, "", "Failed accepts that were not the peer's (EMFILE, ...)."),
    ("chatgate_revocation_tokens_total", Kind::Counter, "team, receiver", "Tokens received by the identity provider's revocation receivers, by team and receiver (oidc_logout, ssf)."),
    ("chatgate_revocation_refused_total", Kind::Counter, "team, receiver, reason", "Revocation tokens refused, by team, receiver and reason (malformed, key, issuer, audience, claims, replay, unavailable); an ssf replay is accepted and counted here too."),
    ("chatgate_revocation_customers_logged_out_total", Kind::Counter, "team, receiver", "Customers (or, for a sid, provider sessions) logged out by a valid revocation token, by team and receiver."),
    ("chatgate_whatsapp_identity_changes_total", Kind::Counter, "", "Changes of the person behind a WhatsApp conversation (a system message, a new identity hash, a refusal) that ended an authentication, open challenge or recognition: one per change and team, however often Meta delivers it."),
    ("chatgate_trace_spans_dropped_total", Kind::Counter, "", "Spans not exported: the queue was full (a slow or absent collector) or the collector did not take them."),
];

/// `# HELP` for every family; every closed-label counter at 0.
pub(super) fn describe_and_register() {
    for &(name, kind, labels, help) in FAMILIES {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
        // A family with labels gets its series from the loops below, from
        // `register_config`, or on first use (HTTP).
        if kind != Kind::Histogram && labels.is_empty() {
            if kind == Kind::Counter {
                metrics::counter!(name).increment(0);
            } else {
                metrics::gauge!(name).increment(0.0);
            }
        }
    }
    for method in Method::ALL {
        metrics::counter!("chatgate_authentications_total", "method" => method.as_str())
            .increment(0);
    }
    for kind in ["login_callback", "assertion", "challenge"] {
        metrics::counter!("chatgate_auth_failures_total", "kind" => kind).increment(0);
    }
    for kind in [EventType::SubjectLocked, EventType::SubjectBanned] {
        metrics::counter!("chatgate_lockouts_total", "kind" => kind.as_str()).increment(0);
    }
    for method in ChallengeMethod::ALL {
        metrics::counter!("chatgate_challenges_started_total", "method" => method.as_str())
            .increment(0);
    }
    for reason in AdvanceReason::ALL {
        metrics::counter!("chatgate_ladder_advances_total", "reason" => reason.as_str())
            .increment(0);
    }
    for sink in ["syslog", "webhook"] {
        metrics::gauge!("chatgate_audit_sink_lag_seconds", "sink" => sink).set(0.0);
    }
    for action in Action::ALL {
        metrics::counter!("chatgate_audit_entries_total", "action" => action.as_str()).increment(0);
    }
    for kind in EventType::ALL {
        metrics::counter!("chatgate_events_total", "type" => kind.as_str()).increment(0);
    }
    for kind in ProviderConfig::ALL {
        for result in number_check::RESULTS {
            metrics::counter!("chatgate_number_checks_total", "kind" => kind.source.as_str(), "result" => result)
                .increment(0);
        }
    }
    for result in NetworkResult::ALL {
        metrics::counter!("chatgate_network_verifications_total", "result" => result.as_str())
            .increment(0);
    }
    for format in crate::domain::wallet::Format::ALL.map(|f| f.as_str()) {
        for result in crate::domain::wallet::challenge::WalletResult::ALL {
            metrics::counter!("chatgate_wallet_presentations_total", "format" => format, "result" => result.as_str())
                .increment(0);
        }
    }
    for result in ["right", "wrong", "refused"] {
        metrics::counter!("chatgate_code_entries_total", "result" => result).increment(0);
    }
    for kind in BACKGROUND_KINDS {
        metrics::gauge!("chatgate_background_queue", "kind" => kind).increment(0.0);
    }
}

/// The sums of the teams whose series this process registered last: a
/// reload, or a write through the operator API, registers only the
/// keyspaces new since, found without going round the teams (at 10 000
/// teams, going round them was a tenth of a write's time,
/// docs/decisions/0491-a-write-costs-its-own-team.md).
static REGISTERED: std::sync::Mutex<Option<crate::config::TeamSums>> = std::sync::Mutex::new(None);

/// The series labelled by the config's file teams and channels, at 0,
/// and `chatgate_teams`, how many teams `config` has (set at start and at
/// each reload). An API team's series are made at its first use
/// ([`register_team`], a counter's first count), so that one with no
/// traffic holds none
/// (docs/decisions/0752-a-team-s-loop-and-series-are-made-at-its-first-use.md).
pub fn register_config(config: &Config) {
    metrics::gauge!("chatgate_teams").set(config.teams.len() as f64);
    metrics::gauge!("chatgate_api_teams").set(config.sums.api_teams() as f64);
    let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    let seen = registered.take().unwrap_or_default();
    // The recorder is the process's: a team's series, once there, stay.
    for keyspace in config.sums.keyspaces_since(&seen) {
        let file_team = config.team_in(keyspace).filter(|t| t.api.is_none());
        let Some(team) = file_team.map(|t| t.id.clone()) else {
            continue;
        };
        for receiver in Receiver::ALL.map(Receiver::as_str) {
            for name in [
                "chatgate_revocation_tokens_total",
                "chatgate_revocation_customers_logged_out_total",
            ] {
                metrics::counter!(name, "team" => team.clone(), "receiver" => receiver)
                    .increment(0);
            }
            for reason in RefusalReason::ALL.map(RefusalReason::as_str) {
                metrics::counter!("chatgate_revocation_refused_total",
                    "team" => team.clone(), "receiver" => receiver, "reason" => reason)
                .increment(0);
            }
        }
        register_team(&team);
    }
    *registered = Some(config.sums.clone());
    register_trusted_lists(config);
    for (name, ch) in config.channels.iter() {
        let kind = ch.kind.name();
        // Registered, not recorded: an empty histogram renders its buckets at 0.
        let _ = metrics::histogram!("chatgate_channel_send_seconds", "kind" => kind);
        for purpose in Purpose::ALL.map(Purpose::as_str) {
            for outcome in ["ok", "error"] {
                metrics::counter!("chatgate_channel_messages_total",
                    "channel" => name.clone(), "kind" => kind, "purpose" => purpose, "outcome" => outcome)
                .increment(0);
            }
        }
    }
}

/// Team `team`'s outbox series, at 0: a file team's at start, an API
/// team's when its outbox loop starts, at its first outbox work.
pub fn register_team(team: &str) {
    for kind in OUTBOX_KINDS {
        for name in [
            "chatgate_outbox_delivered_total",
            "chatgate_outbox_failed_attempts_total",
            "chatgate_outbox_given_up_total",
        ] {
            metrics::counter!(name, "team" => team.to_string(), "kind" => kind).increment(0);
        }
        metrics::gauge!("chatgate_outbox_oldest_pending_seconds", "team" => team.to_string(), "kind" => kind)
            .increment(0.0);
    }
}

/// The fetch results of a trusted list (docs/wallet.md#trusted-lists).
pub const TRUSTED_LIST_RESULTS: [&str; 6] = [
    "ok",
    "unreachable",
    "bad_signature",
    "bad_list",
    "expired",
    "rollback",
];

/// Each team's trusted lists' series, at 0 (unusable until a copy is read):
/// the teams the sums list as naming one, not every team (a write through
/// the operator API registers the set it put in force).
fn register_trusted_lists(config: &Config) {
    let teams = config.sums.trusted_list_teams();
    for team in teams.filter_map(|id| config.teams.get(id)) {
        let lists = team.wallet.iter().flat_map(|w| &w.trusted_lists);
        for list in lists {
            let (t, l) = (team.id.clone(), list.name.clone());
            for result in TRUSTED_LIST_RESULTS {
                metrics::counter!("chatgate_trusted_list_fetches_total",
                    "team" => t.clone(), "list" => l.clone(), "result" => result)
                .increment(0);
            }
            metrics::gauge!("chatgate_trusted_list_usable", "team" => t.clone(), "list" => l.clone())
                .increment(0.0);
            metrics::gauge!("chatgate_trusted_list_next_update_seconds", "team" => t, "list" => l)
                .increment(0.0);
        }
    }
}
