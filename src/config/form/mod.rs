//! The JSON form of a team or channel file (docs/operator-api.md#the-representation).
//!
//! A form is what the operator API reads and writes in place of a file:
//! the same keys, tables as objects, durations as strings. It is a shape,
//! not a check: a file's table becomes its form with every secret member
//! shown as `{"hmac": "<64 hex>"}` ([`shown`]); a JSON body becomes a
//! table ([`body`]) for the one loader that checks files at start-up,
//! which names its problems by RFC 6901 pointers into the body
//! ([`pointer`]); [`secret`] says which members hold a secret. The
//! readers that run that loader over a body (`team_json.rs`,
//! `channel_json.rs`) stand beside the loaders they call, not here: a
//! form knows no loader, so the loaders can use it.
mod body;
mod pointer;
mod secret;
mod shown;

pub use body::table_of_json;
pub use pointer::{escape, pointer_of_key, FormProblem};
pub use secret::{channel_place, is_secret_member, SECRET_MEMBERS};
pub use shown::{json_form, secrets_read_back};

/// A team's JSON form kept as its text: some hundreds of bytes where the
/// parsed tree took some kilobytes a team, for a form read only by the
/// operator API (a read, a write, an export), which parses it then
/// (docs/decisions/0801-a-team-s-form-is-kept-as-its-text.md).
#[derive(Clone, PartialEq, Eq)]
pub struct FormText(Box<str>);

impl FormText {
    /// `form`, kept as its text.
    pub fn of(form: &serde_json::Value) -> Self {
        FormText(form.to_string().into_boxed_str())
    }

    /// The form, parsed again.
    pub fn value(&self) -> serde_json::Value {
        // Written by `of`, so it parses; `Null`, as with the API off, else.
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

impl Default for FormText {
    fn default() -> Self {
        FormText::of(&serde_json::Value::Null)
    }
}

impl std::fmt::Debug for FormText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shown(p: &str, v: &str) -> String {
        format!("h({p},{})", v.len())
    }

    #[test]
    fn a_file_reads_back_with_its_secrets_as_hmacs_and_its_tables_as_objects() {
        let table: toml::Table = toml::from_str(
            "id = \"acme\"\n[[security_keys]]\nkid = \"k\"\nsecret = \"whsec_abc\"\nprimary = true\n\
             [settings.otp]\nttl = \"3m\"\nlength = 6\n[webhook]\nurl = \"https://x\"\nsecret = \"s\"\n",
        )
        .unwrap();
        let form = json_form(&table, &shown);
        assert_eq!(
            form,
            json!({
                "id": "acme",
                "security_keys": [{"kid": "k", "secret": {"hmac": "h(/security_keys/0/secret,9)"}, "primary": true}],
                "settings": {"otp": {"ttl": "3m", "length": 6}},
                "webhook": {"url": "https://x", "secret": {"hmac": "h(/webhook/secret,1)"}},
            })
        );
    }

    #[test]
    fn every_shape_problem_of_a_body_is_named_by_its_pointer() {
        let body = json!({
            "id": "acme",
            "a/b": null,
            "m~n": {"x": null},
            "webhook": {"secret": "${HOOK}"},
            "oidc": {"client_secret": {"hmac": "00"}},
            "list": [1, null],
            "big": 18446744073709551615u64,
        });
        let problems = table_of_json(&body).unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/a~1b",
                "/big",
                "/list/1",
                "/m~0n/x",
                "/oidc/client_secret",
                "/webhook/secret"
            ]
        );
        assert!(problems.iter().all(|p| !p.detail.contains("HOOK")));
        assert_eq!(table_of_json(&json!([1])).unwrap_err()[0].pointer, "");
    }

    #[test]
    fn a_body_becomes_the_table_a_file_would_write() {
        let body = json!({"id": "acme", "n": 3, "f": 1.5, "b": true, "t": {"s": ["a"]}});
        let table = table_of_json(&body).unwrap();
        let file: toml::Table =
            toml::from_str("id = \"acme\"\nn = 3\nf = 1.5\nb = true\n[t]\ns = [\"a\"]\n").unwrap();
        assert_eq!(table, file);
    }

    #[test]
    fn keys_become_rfc_6901_pointers() {
        assert_eq!(pointer_of_key("settings.otp.ttl"), "/settings/otp/ttl");
        assert_eq!(pointer_of_key("api_keys[0].id"), "/api_keys/0/id");
        assert_eq!(
            pointer_of_key("settings.otp.ladder[2]"),
            "/settings/otp/ladder/2"
        );
        assert_eq!(pointer_of_key("(file)"), "");
        assert_eq!(pointer_of_key("a~b"), "/a~0b");
        assert_eq!(escape("a/b~c"), "a~1b~0c");
    }
}
