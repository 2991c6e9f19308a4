//! A TOML table read with each value's member name at hand: what
//! `de::from_table` reads a file's or a body's table through, so that a
//! [`Secret`](crate::domain::secrets::Secret) takes its value only under a
//! name the JSON form seals and reads back as `{"hmac"}`
//! (`form::is_secret_member`, docs/operator-api.md#secrets). A secret
//! under any other name is refused, never kept in clear
//! (docs/decisions/0450-team-secrets-are-typed.md).
use serde::de::value::{MapDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

use crate::domain::secrets::SECRET_FIELD;

/// Why a member typed as a secret is refused when the form does not seal
/// its name.
pub(super) const UNSEALED_SECRET: &str =
    "is a secret the operator API would read back in clear: refused until its name is declared secret";

/// A problem, and the members (outermost first) of the value it is about.
#[derive(Debug)]
pub(super) struct MemberError {
    pub keys: Vec<String>,
    pub message: String,
}

impl std::fmt::Display for MemberError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MemberError {}

impl de::Error for MemberError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        MemberError {
            keys: Vec::new(),
            message: msg.to_string(),
        }
    }
}

/// toml's own error, its members (its last line, "in `a.b`") kept.
impl From<toml::de::Error> for MemberError {
    fn from(e: toml::de::Error) -> Self {
        let rendered = e.to_string();
        let keys = (rendered.lines().rev())
            .find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
            .map(|path| path.split('.').map(str::to_string).collect())
            .unwrap_or_default();
        MemberError {
            keys,
            message: e.message().to_string(),
        }
    }
}

/// One value and the name of the member that holds it (an array's items
/// are named by their array's name, as the JSON form names them); `None`
/// for the table read as a whole.
pub(super) struct Member {
    pub name: Option<String>,
    pub value: toml::Value,
}

impl Member {
    pub(super) fn table(table: toml::Table) -> Self {
        Member {
            name: None,
            value: toml::Value::Table(table),
        }
    }

    /// Whether the form seals this member's strings.
    fn sealed(&self) -> bool {
        self.name
            .as_deref()
            .is_some_and(super::form::is_secret_member)
    }
}

impl<'de> de::Deserializer<'de> for Member {
    type Error = MemberError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, MemberError> {
        match self.value {
            toml::Value::Table(table) => visitor.visit_map(Entries {
                entries: table.into_iter(),
                value: None,
            }),
            toml::Value::Array(items) => {
                let len = items.len();
                let mut seq = Items {
                    name: self.name,
                    items: items.into_iter(),
                };
                let out = visitor.visit_seq(&mut seq)?;
                if seq.items.len() == 0 {
                    Ok(out)
                } else {
                    Err(de::Error::invalid_length(len, &"fewer elements in array"))
                }
            }
            other => Ok(other.deserialize_any(visitor)?),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, MemberError> {
        visitor.visit_some(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, MemberError> {
        Ok(self.value.deserialize_enum(name, variants, visitor)?)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, MemberError> {
        if name != SECRET_FIELD {
            return visitor.visit_newtype_struct(self);
        }
        if !self.sealed() {
            return Err(de::Error::custom(UNSEALED_SECRET));
        }
        let text = match self.value {
            toml::Value::String(text) => text,
            toml::Value::Datetime(d) => d.to_string(),
            other => return Err(not_a_string(&other)),
        };
        let entry = std::iter::once((SECRET_FIELD, text));
        visitor.visit_map(MapDeserializer::<_, MemberError>::new(entry))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// What serde says of a value that is not a string (its kind, never the
/// value, is what `de::describe` keeps).
fn not_a_string(value: &toml::Value) -> MemberError {
    let found = match value {
        toml::Value::Integer(i) => de::Unexpected::Signed(*i),
        toml::Value::Float(f) => de::Unexpected::Float(*f),
        toml::Value::Boolean(b) => de::Unexpected::Bool(*b),
        toml::Value::Array(_) => de::Unexpected::Seq,
        toml::Value::Table(_) => de::Unexpected::Map,
        toml::Value::String(_) | toml::Value::Datetime(_) => de::Unexpected::Other("a string"),
    };
    de::Error::invalid_type(found, &"a string")
}

/// A table's members, each value read under its name.
struct Entries {
    entries: toml::map::IntoIter,
    value: Option<(String, toml::Value)>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = MemberError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, MemberError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let name: StringDeserializer<MemberError> = key.clone().into_deserializer();
        self.value = Some((key, value));
        seed.deserialize(name).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, MemberError> {
        let (key, value) = (self.value.take())
            .ok_or_else(|| <MemberError as de::Error>::custom("value is missing"))?;
        let member = Member {
            name: Some(key.clone()),
            value,
        };
        seed.deserialize(member).map_err(|mut e| {
            e.keys.insert(0, key);
            e
        })
    }
}

/// An array's items, each named by the array's name.
struct Items {
    name: Option<String>,
    items: std::vec::IntoIter<toml::Value>,
}

impl<'de> SeqAccess<'de> for Items {
    type Error = MemberError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, MemberError> {
        let Some(value) = self.items.next() else {
            return Ok(None);
        };
        let name = self.name.clone();
        seed.deserialize(Member { name, value }).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::de::from_table;
    use super::super::form::{pointer_of_key, table_of_json};
    use super::super::team_json::BODY;
    use super::*;
    use crate::domain::secrets::Secret;

    /// A team section with a secret of a name the form does not seal.
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct NewProvider {
        client_id: String,
        api_key_of_a_new_name: Secret,
    }

    /// A team section whose secrets are all under sealed names.
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sealed {
        client_secret: Secret,
        hook: Hook,
        token: Vec<Secret>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Hook {
        url: String,
        secret: Option<Secret>,
    }

    fn exposed(s: &Secret) -> &str {
        secrecy::ExposeSecret::expose_secret(s.get())
    }

    #[test]
    fn an_undeclared_secret_is_refused_in_a_file_at_start_up() {
        let table: toml::Table =
            toml::from_str("client_id = \"bank\"\napi_key_of_a_new_name = \"k-8812771\"\n")
                .unwrap();
        let e = from_table::<NewProvider>(table, "teams/acme.toml", "number_checks").unwrap_err();
        assert_eq!(e.file, "teams/acme.toml");
        assert_eq!(e.key, "number_checks.api_key_of_a_new_name");
        assert_eq!(e.problem, UNSEALED_SECRET);
        assert!(!e.to_string().contains("k-8812771"), "{e}");
    }

    #[test]
    fn an_undeclared_secret_is_refused_in_a_body_at_its_pointer() {
        let body = json!({"provider": {"client_id": "bank", "api_key_of_a_new_name": "k-8812771"}});
        let mut table = table_of_json(&body).unwrap();
        let Some(toml::Value::Table(provider)) = table.remove("provider") else {
            panic!("the body has its provider");
        };
        let e = from_table::<NewProvider>(provider, BODY, "provider").unwrap_err();
        assert_eq!(pointer_of_key(&e.key), "/provider/api_key_of_a_new_name");
        assert_eq!(e.problem, UNSEALED_SECRET);
        assert!(!e.to_string().contains("k-8812771"), "{e}");
    }

    #[test]
    fn a_secret_under_a_sealed_name_is_taken_at_any_depth() {
        let table: toml::Table = toml::from_str(
            "client_secret = \"cs\"\ntoken = [\"t1\", \"t2\"]\n[hook]\nurl = \"https://x\"\nsecret = \"hs\"\n",
        )
        .unwrap();
        let s = from_table::<Sealed>(table, "teams/acme.toml", "").unwrap();
        assert_eq!(exposed(&s.client_secret), "cs");
        assert_eq!(
            s.token.iter().map(exposed).collect::<Vec<_>>(),
            ["t1", "t2"]
        );
        assert_eq!(s.hook.secret.as_ref().map(exposed), Some("hs"));
        let table: toml::Table = toml::from_str(
            "client_secret = \"cs\"\ntoken = []\n[hook]\nurl = \"https://x\"\nsecret = 7\n",
        )
        .unwrap();
        let e = from_table::<Sealed>(table, "f.toml", "").unwrap_err();
        assert_eq!(e.key, "hook.secret");
        assert_eq!(e.problem, "wrong type: expected a string, found an integer");
    }

    #[test]
    fn members_are_named_in_errors_as_toml_names_them() {
        let table: toml::Table =
            toml::from_str("client_secret = \"cs\"\ntoken = []\n[hook]\nurl = 1\n").unwrap();
        let e = from_table::<Sealed>(table, "f.toml", "pre").unwrap_err();
        assert_eq!(e.key, "pre.hook.url");
        let table: toml::Table = toml::from_str("client_secret = \"cs\"\ntoken = []\n").unwrap();
        let e = from_table::<Sealed>(table, "f.toml", "pre").unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.problem.as_str()),
            ("pre.hook", "is required but missing")
        );
    }
}

/// Every provider's secret is a `Secret`, so it comes only through this
/// reader, and nothing else of its keys is one.
#[cfg(test)]
mod providers {
    use super::Member;
    use crate::domain::secrets::UNCHECKED_SECRET;
    use crate::{network_verification as network, number_checks as checks};

    /// Whether `read` failed on a `Secret` read by a deserializer that
    /// checks nothing.
    fn secret_refused<T, E: std::fmt::Display>(read: Option<Result<T, E>>) -> bool {
        matches!(read, Some(Err(e)) if e.to_string().contains(UNCHECKED_SECRET))
    }

    /// `key` alone, set to a string.
    fn alone(key: &str) -> toml::Table {
        toml::Table::from_iter([(key.to_string(), toml::Value::from("k-8812771"))])
    }

    fn nowhere(_: &url::Url) -> bool {
        false
    }

    /// Each key of a registry's kind `$info` named `$kind`, written alone:
    /// read by toml itself, only the kind's declared secrets are refused,
    /// by `Secret`; read through `Member` (as the loader reads it), each of
    /// those is taken under its sealed name.
    macro_rules! only_declared_secrets_are_secrets {
        ($parse:path, $kind:expr, $info:expr) => {
            for key in $info.keys {
                let secret = $info.secrets_go.iter().any(|g| g.secret == *key);
                let plain = toml::Value::Table(alone(key));
                let refused = secret_refused($parse($kind, plain, nowhere));
                assert_eq!(refused, secret, "{}.{key}", $kind);
                let taken = $parse($kind, Member::table(alone(key)), nowhere);
                assert!(!secret || matches!(taken, Some(Ok(_))), "{}.{key}", $kind);
            }
        };
    }

    /// A kind that types a declared secret as a plain string, or types a
    /// secret it does not declare, fails here.
    #[test]
    fn every_provider_s_declared_secret_and_only_it_is_a_secret() {
        for info in checks::ProviderConfig::ALL {
            let kind = info.source.as_str();
            only_declared_secrets_are_secrets!(checks::ProviderConfig::parse, kind, info);
        }
        for info in network::ProviderConfig::ALL {
            only_declared_secrets_are_secrets!(network::ProviderConfig::parse, info.name, info);
        }
    }
}
