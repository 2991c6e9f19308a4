//! RFC 6901 pointers into a form: how a problem names where it stands.
pub use crate::error::Pointed as FormProblem;

/// A problem at `pointer`.
pub(super) fn problem(pointer: &str, detail: impl Into<String>) -> FormProblem {
    FormProblem {
        pointer: pointer.to_string(),
        detail: detail.into(),
    }
}

/// One reference token of an RFC 6901 pointer: `~` as `~0`, `/` as `~1`.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The pointer of a configuration error's key (`settings.otp.ttl`,
/// `api_keys[0].id`): `/settings/otp/ttl`, `/api_keys/0/id`; a key of no
/// member (`(file)`) is the body as a whole, `""`.
pub fn pointer_of_key(key: &str) -> String {
    if key.is_empty() || key.starts_with('(') {
        return String::new();
    }
    let mut pointer = String::new();
    for part in key.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        pointer.push('/');
        pointer.push_str(&escape(name));
        for index in indexes.split(['[', ']']).filter(|i| !i.is_empty()) {
            pointer.push('/');
            pointer.push_str(index);
        }
    }
    pointer
}
