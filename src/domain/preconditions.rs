//! Conditional writes of the operator API (docs/operator-api.md#concurrency):
//! whether `If-Match` and `If-None-Match` let a write go ahead, given the
//! current `ETag` of what it writes (RFC 9110, strong comparison).

/// Why a write may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 428: it replaces or deletes, and names no version (`If-Match`).
    Required,
    /// 412: `If-Match` names another version (or there is none), or
    /// `If-None-Match: *` and it exists.
    Failed,
}

/// Whether a write may go ahead: `if_match` and `if_none_match` as sent,
/// `current` the quoted `ETag` of what exists (`None`: nothing does).
/// A replace or a delete needs `If-Match` naming the current version
/// (`*` names none: 428, as no `If-Match`); `If-None-Match: *` creates
/// only.
pub fn check(
    if_match: Option<&str>,
    if_none_match: Option<&str>,
    current: Option<&str>,
) -> Result<(), Refusal> {
    let names_any = |list: &str| list.split(',').any(|t| t.trim() == "*");
    if if_none_match.is_some_and(names_any) && current.is_some() {
        return Err(Refusal::Failed);
    }
    match (if_match, current) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(Refusal::Required),
        // Nothing to match: the condition cannot hold.
        (Some(_), None) => Err(Refusal::Failed),
        // `*` names no version: a writer that sends it has not read what
        // it replaces, as one that sends nothing.
        (Some(list), Some(_)) if names_any(list) => Err(Refusal::Required),
        (Some(list), Some(etag)) => {
            let matches = list.split(',').map(str::trim).any(|t| t == etag);
            matches.then_some(()).ok_or(Refusal::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"abc\"";

    #[test]
    fn a_replace_or_delete_names_the_current_version() {
        assert_eq!(check(None, None, Some(TAG)), Err(Refusal::Required));
        assert_eq!(check(Some(TAG), None, Some(TAG)), Ok(()));
        assert_eq!(check(Some("\"x\", \"abc\""), None, Some(TAG)), Ok(()));
        assert_eq!(check(Some("*"), None, Some(TAG)), Err(Refusal::Required));
        assert_eq!(
            check(Some("\"abc\", *"), None, Some(TAG)),
            Err(Refusal::Required)
        );
        assert_eq!(check(Some("\"x\""), None, Some(TAG)), Err(Refusal::Failed));
        // Strong comparison: a weak tag or an unquoted one is another.
        assert_eq!(
            check(Some("W/\"abc\""), None, Some(TAG)),
            Err(Refusal::Failed)
        );
        assert_eq!(check(Some("abc"), None, Some(TAG)), Err(Refusal::Failed));
    }

    #[test]
    fn a_create_needs_no_version_and_if_none_match_creates_only() {
        assert_eq!(check(None, None, None), Ok(()));
        assert_eq!(check(None, Some("*"), None), Ok(()));
        assert_eq!(check(None, Some("*"), Some(TAG)), Err(Refusal::Failed));
        assert_eq!(check(Some(TAG), Some("*"), Some(TAG)), Err(Refusal::Failed));
        assert_eq!(check(Some(TAG), None, None), Err(Refusal::Failed));
        assert_eq!(check(Some("*"), None, None), Err(Refusal::Failed));
    }
}
