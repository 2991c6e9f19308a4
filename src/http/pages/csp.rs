//! The one builder of the pages' content security policies: every policy
//! allows nothing by default (`default-src 'none'`), is framed nowhere
//! and sets no `<base>`; a page names only what it adds (its inline
//! stylesheets and scripts by their hashes, its fetches, where its form
//! goes). The pages without a policy of their own get [`Csp::page`]
//! from the router.
use axum::http::HeaderValue;

use super::frame::STYLE;

/// A policy being built, its directives in the order they were named.
#[must_use]
pub struct Csp(String);

impl Csp {
    /// Nothing allowed yet.
    pub fn new() -> Csp {
        Csp("default-src 'none'".to_string())
    }

    /// The page's own inline scripts, by their hashes.
    pub fn scripts(self, inline: &[&str]) -> Csp {
        let hashes: Vec<String> = inline.iter().map(|s| hash(s)).collect();
        self.allow("script-src", &hashes.join(" "))
    }

    /// The pages' stylesheet ([`STYLE`], which the frame always draws)
    /// and the page's own inline ones, by their hashes.
    pub fn styles(self, own: &[&str]) -> Csp {
        let hashes: Vec<String> = std::iter::once(STYLE)
            .chain(own.iter().copied())
            .map(hash)
            .collect();
        self.allow("style-src", &hashes.join(" "))
    }

    /// `directive` with `sources` as they are written (`'self'`,
    /// `data:`): for a page that loads its own files (the console).
    pub fn allow(mut self, directive: &str, sources: &str) -> Csp {
        self.0.push_str("; ");
        self.0.push_str(directive);
        self.0.push(' ');
        self.0.push_str(sources);
        self
    }

    /// The policy: framed nowhere, no `<base>`, forms going to
    /// `form_action` only (`'none'`: a page that submits nothing).
    pub fn form_action(self, form_action: &str) -> String {
        format!(
            "{}; frame-ancestors 'none'; base-uri 'none'; form-action {form_action}",
            self.0
        )
    }

    /// The policy of a page that runs no script and submits nothing, its
    /// one stylesheet the pages' own: the router gives it to every HTML
    /// answer that has none of its own.
    pub fn page() -> &'static HeaderValue {
        static PAGE: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
        PAGE.get_or_init(|| {
            let policy = Csp::new().styles(&[]).form_action("'none'");
            HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
        })
    }
}

/// An inline stylesheet's or script's source in a policy: `'sha256-…'`
/// of `text`.
pub fn hash(text: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text));
    format!("'sha256-{digest}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy every page had when each wrote its own, as its bytes.
    #[test]
    fn the_built_policies_are_the_pages_own_to_the_byte() {
        assert_eq!(
            Csp::page().to_str().unwrap(),
            "default-src 'none'; style-src 'sha256-ShafvZNLv9jAmt8qghHKBOPuThyVHoHlDg3glyXDIrE='; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        );
        let own = "p{}";
        assert_eq!(
            Csp::new()
                .styles(&[own])
                .form_action("'self' https://op.example"),
            format!(
                "default-src 'none'; style-src {} {}; frame-ancestors 'none'; base-uri 'none'; \
                 form-action 'self' https://op.example",
                hash(STYLE),
                hash(own)
            )
        );
        let script = "x()";
        assert_eq!(
            Csp::new()
                .scripts(&[script])
                .styles(&[])
                .allow("connect-src", "'self'")
                .form_action("'none'"),
            format!(
                "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                hash(script),
                hash(STYLE)
            )
        );
    }

    #[test]
    fn a_hash_is_the_sha256_of_the_text_as_written() {
        // `echo -n 'p{}' | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            hash("p{}"),
            "'sha256-gG2yISYereRMiG2lMXrbiUgi0Ubw9p7QCeWcroOvy9Y='"
        );
    }
}
