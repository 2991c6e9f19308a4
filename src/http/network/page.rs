//! The confirm page of a network link (docs/network-authentication.md#the-link):
//! the team and the conversation's channel named, one button, a form
//! that posts its token back to the link. Its policy lets the form go to
//! the gateway and, through the button's redirect, to the operator only.
use axum::http::StatusCode;
use axum::response::Response;

use crate::gateway::network::NetworkConfirm;
use crate::http::pages::{escape, one_form, with_names, Csp, Said};

/// The button's stylesheet, beside the pages' own (`pages::STYLE`).
const BUTTON_STYLE: &str = "\
form{margin:1.5rem 0 0}\
button{width:100%;min-height:3rem;border:0;border-radius:.5rem;background:var(--accent);\
color:#fff;font:inherit;font-weight:600;cursor:pointer}\
button:focus-visible{outline:.2rem solid var(--fg);outline-offset:.2rem}";

/// The confirm page: `said`'s text with `#TEAM#` and `#CHANNEL#` filled
/// in, its first line the heading, its last (of two or more) the
/// button's label, the lines between what to do; the form carries
/// `confirm`'s form token and posts to the page's own address.
pub(super) fn confirm(said: &Said, confirm: &NetworkConfirm) -> Response {
    let text = with_names(&escape(&said.text), &confirm.named);
    let policy = policy(&confirm.form_action);
    let form = (confirm.form_token.as_str(), "", None);
    one_form(
        StatusCode::OK,
        &said.lang,
        &text,
        form,
        BUTTON_STYLE,
        &policy,
    )
}

/// The page's content security policy: the pages' own, with the button's
/// stylesheet, and a form that may go to the gateway and, through the
/// button's redirect, where the provider says (`form_action`: the
/// operator's origin; for Vonage, whose redirects pass through the
/// customer's mobile operator, any `https` address).
fn policy(form_action: &str) -> String {
    let form_action = format!("'self' {form_action}");
    Csp::new().styles(&[BUTTON_STYLE]).form_action(&form_action)
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;
    use crate::http::pages::drawn;

    fn confirming(team: &str) -> NetworkConfirm {
        NetworkConfirm {
            speaks: crate::gateway::Speaks {
                team: "acme".into(),
                channel: "webchat".into(),
                locale: "en".into(),
            },
            named: crate::gateway::network::Named {
                team_name: team.into(),
                channel_words: "SMS",
            },
            form_action: "https://op.example:8443".into(),
            left: std::time::Duration::from_secs(60),
            form_token: "t0k\"en".into(),
        }
    }

    #[test]
    fn the_page_names_the_team_and_channel_and_has_one_button() {
        let said = Said {
            lang: "en".into(),
            text: "#TEAM# asks about #CHANNEL#.\nOnly if you chat with #TEAM#.\nContinue".into(),
        };
        let res = confirm(&said, &confirming("Acme <Bank>"));
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.ends_with("form-action 'self' https://op.example:8443"),
            "{csp}"
        );
        let html = drawn(res);
        assert!(
            html.contains("<h1>Acme &lt;Bank&gt; asks about SMS.</h1>"),
            "{html}"
        );
        assert!(html.contains("<p>Only if you chat with Acme &lt;Bank&gt;.</p>"));
        assert_eq!(html.matches("<button").count(), 1);
        assert!(html.contains("<button type=\"submit\">Continue</button>"));
        assert!(html.contains("value=\"t0k&quot;en\""), "{html}");
        assert!(html.contains("<form method=\"post\">"));
    }

    #[test]
    fn a_one_line_text_has_a_button_all_the_same() {
        let said = Said {
            lang: "ar".into(),
            text: "#TEAM#".into(),
        };
        let html = drawn(confirm(&said, &confirming("Acme")));
        assert!(html.contains("<h1>Acme</h1>") && html.contains(">OK</button>"));
        assert!(html.contains("dir=\"rtl\""));
    }
}
