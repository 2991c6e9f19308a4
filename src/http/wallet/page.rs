//! A wallet link's page (docs/wallet.md#the-link-page): the heading, a
//! button that hands the signed request to the Digital Credentials API
//! (shown only where the browser has it), a button that opens a wallet on
//! this device with the `openid4vp://` link, the same link as a QR code
//! (inline SVG), and a poll of the challenge's state. Its policy allows
//! its own script (by hash) and fetches to the gateway only; it loads
//! nothing from anywhere.
use axum::http::StatusCode;
use axum::response::Response;

use crate::gateway::wallet::WalletPage;
use crate::http::pages::{escape, html_answer, with_names, Csp, Frame, Said};

/// The buttons' and the QR code's stylesheet, beside the pages' own
/// (`pages::STYLE`). A `hidden` element stays hidden though `button` sets a
/// display: the Digital Credentials button shows only where the script
/// found the API.
const WALLET_STYLE: &str = "\
[hidden]{display:none!important}\
.actions{margin:1.5rem 0 0;display:flex;flex-direction:column;gap:1rem}\
.button,button{display:block;width:100%;min-height:3rem;padding:.75rem;border:0;\
border-radius:.5rem;background:var(--accent);color:#fff;font:inherit;font-weight:600;\
text-align:center;text-decoration:none;cursor:pointer}\
.button:focus-visible,button:focus-visible{outline:.2rem solid var(--fg);outline-offset:.2rem}\
.qr{margin:1.5rem auto 0;max-width:16rem;background:#fff;padding:.5rem;border-radius:.5rem}\
.qr svg{display:block;width:100%;height:auto}";

/// The page's one script: the Digital Credentials API where the browser
/// has it (its result, or its refusal, posted to the link's response
/// endpoint; a verified answer's binding code, which that POST's answer
/// carries, shown in `page_wallet_code`'s words from `#w`'s data), and
/// the poll that moves to the end page once the challenge is no longer
/// open (once it shows the code, only once the challenge ended). When no
/// wallet on the device answers the API (or the customer closes its
/// dialog), its button is no longer offered and the focus moves to the
/// link's. It reads everything it needs from `#w`'s data.
pub(super) const SCRIPT: &str = "(function(){\
var d=document.getElementById('w').dataset,b=document.getElementById('dc'),shown=false;\
function post(body){return fetch(d.answer,{method:'POST',headers:{'Content-Type':'application/json'},\
body:JSON.stringify(body)});}\
function poll(){fetch(d.status,{cache:'no-store'}).then(function(r){\
if(r.status===410||r.status===404){location.reload();return null;}return r.json();})\
.then(function(s){var w=s&&s.state&&s.state!=='open'&&!(shown&&s.state==='answered');\
if(w){location.href=d.done;}else{setTimeout(poll,2000);}},\
function(){setTimeout(poll,4000);});}\
function show(code){shown=true;var h=document.createElement('h1');\
h.textContent=d.bound.split('#CODE#').join(code);document.querySelector('main').replaceChildren(h);}\
if(b&&window.DigitalCredential&&navigator.credentials&&navigator.credentials.get){b.hidden=false;\
b.addEventListener('click',function(){navigator.credentials.get({digital:{requests:[\
{protocol:'openid4vp-v1-signed',data:{request:d.request}}]}}).then(function(c){\
var data=c&&c.data;if(typeof data==='string'){try{data=JSON.parse(data);}catch(e){}}\
return post({protocol:c.protocol,data:data});},function(){b.hidden=true;\
document.getElementById('open').focus();return post({error:'access_denied'});})\
.then(function(r){return r.json();}).then(function(a){\
if(a&&typeof a.code==='string'&&/^[0-9]+$/.test(a.code)){show(a.code);}poll();},function(){poll();});});}\
setTimeout(poll,2000);})();";

/// The page of one request: `said`'s text with the team and channel
/// named, shown once (its first line the heading, the others what to do);
/// `code` the link's; `bound` the words a verified answer's binding code
/// is shown in (`#CODE#` the code); `buttons` the texts of the link's
/// button (`page_wallet_open`) and of the Digital Credentials API's
/// (`page_wallet_here`), each on its own button and nowhere else
/// (docs/wallet.md#the-link-page).
pub(super) fn wallet_page(
    said: &Said,
    page: &WalletPage,
    (code, bound): (&str, &str),
    (open, here): (&Said, &Said),
) -> Response {
    let text = with_names(&escape(&said.text), &page.named);
    let mut lines = text.lines();
    let heading = lines.next().unwrap_or_default();
    let advice: String = lines.map(|l| format!("<p>{l}</p>\n")).collect();
    let base = format!("/w/{code}");
    let main = format!(
        "<h1>{heading}</h1>\n{advice}<div id=\"w\" data-request=\"{request}\" \
         data-answer=\"{base}/response\" data-status=\"{base}/status\" data-done=\"{base}/done\" \
         data-bound=\"{bound}\"></div>\n\
         <div class=\"actions\">\n<button id=\"dc\" type=\"button\"{here_lang} hidden>{here}</button>\n\
         <a id=\"open\" class=\"button\" href=\"{link}\"{open_lang}>{open}</a>\n</div>\n\
         <div class=\"qr\" role=\"img\" aria-label=\"QR\">{qr}</div>\n",
        request = escape(&page.dc_request),
        bound = escape(bound),
        link = escape(&page.wallet_link),
        qr = qr_svg(&page.wallet_link),
        here = escape(&here.text),
        here_lang = lang_if_other(here, said),
        open = escape(&open.text),
        open_lang = lang_if_other(open, said),
    );
    let html = Frame {
        lang: &said.lang,
        title: heading,
        style: WALLET_STYLE,
        main: &main,
        script: SCRIPT,
    }
    .html();
    html_answer(StatusCode::OK, html, Some(&policy()))
}

/// ` lang="TAG"` for a button whose text fell back to another language
/// than the page's, else nothing.
fn lang_if_other(label: &Said, page: &Said) -> String {
    if label.lang == page.lang {
        String::new()
    } else {
        format!(" lang=\"{}\"", escape(&label.lang))
    }
}

/// `text` as a QR code, an SVG element drawn by the `qrcode` crate (no
/// XML prolog, no style: attributes only); empty when it does not fit.
fn qr_svg(text: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    svg.find("<svg")
        .map_or(String::new(), |at| svg[at..].to_string())
}

/// The page's content security policy: the pages' stylesheet and its
/// own, its own script, fetches to the gateway, no form, no frame.
fn policy() -> String {
    Csp::new()
        .styles(&[WALLET_STYLE])
        .scripts(&[SCRIPT])
        .allow("connect-src", "'self'")
        .form_action("'none'")
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;
    use crate::http::pages::drawn;

    #[test]
    fn the_page_runs_its_own_script_only_and_loads_nothing() {
        let said = Said {
            lang: "es".into(),
            text: "Confirma <ya> (#TEAM#, #CHANNEL#)".into(),
        };
        let page = WalletPage {
            speaks: crate::gateway::Speaks {
                team: "acme".into(),
                channel: "webchat".into(),
                locale: "es".into(),
            },
            named: crate::gateway::network::Named {
                team_name: "Acme".into(),
                channel_words: "WhatsApp",
            },
            dc_request: "a.b\"c".into(),
            wallet_link: "openid4vp://?client_id=x509_hash%3Aab&request_uri=https%3A%2F%2Fg.example%2Fw%2Fc%2Frequest%2Fr&request_uri_method=post".into(),
            left: std::time::Duration::from_secs(60),
        };
        let button = |lang: &str, text: &str| Said {
            lang: lang.into(),
            text: text.into(),
        };
        let buttons = (
            &button("es", "Abrir <mi> cartera"),
            &button("en", "Use a wallet"),
        );
        let res = wallet_page(&said, &page, ("c0de", "Escribe #CODE# <ya>"), buttons);
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(
            csp.contains(&format!(
                "script-src {};",
                crate::http::pages::csp_hash(SCRIPT)
            )),
            "{csp}"
        );
        let html = drawn(res);
        assert!(html.contains("<html lang=\"es\">"), "{html}");
        assert!(html.contains("<h1>Confirma &lt;ya&gt; (Acme, WhatsApp)</h1>"));
        assert!(
            html.contains("data-bound=\"Escribe #CODE# &lt;ya&gt;\""),
            "{html}"
        );
        assert!(html.contains("data-request=\"a.b&quot;c\""), "{html}");
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains("href=\"openid4vp://?client_id=x509_hash%3Aab&amp;request_uri="));
        assert!(html.contains("<svg") && !html.contains("<?xml"), "{html}");
        assert!(!html.contains(" src="), "{html}");
        // The API's button starts hidden, and no rule of the page shows it.
        assert!(html.contains(
            "<button id=\"dc\" type=\"button\" lang=\"en\" hidden>Use a wallet</button>"
        ));
        // Each text once: the heading's, and each button's on its button.
        assert!(html.contains(">Abrir &lt;mi&gt; cartera</a>"), "{html}");
        assert_eq!(html.matches("Confirma").count(), 2, "{html}"); // <title> and <h1>
        assert_eq!(html.matches("Abrir").count(), 1, "{html}");
        assert!(WALLET_STYLE.starts_with("[hidden]{display:none!important}"));
    }
}
