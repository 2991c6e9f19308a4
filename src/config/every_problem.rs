//! Every problem of an operator's JSON body (docs/operator-api.md#the-representation),
//! found with a check that stops at the first: the member at fault is left
//! out and the body checked again, for a team's body and a channel's alike.
use std::collections::BTreeSet;

use super::form::FormProblem;

/// The most problems one answer lists.
pub(super) const MAX_PROBLEMS: usize = 32;

/// What `check` makes of `body`, or every problem found. `check` stops at
/// a body's first problem; to find the next, the member at fault is left
/// out (an array as a whole, so the pointers of the rest still name the
/// body's members) and the body checked again. A problem that only
/// leaving out made (a required member now missing) is not listed: its
/// table is left out instead, or a top-level member replaced by the
/// `placeholder` of its pointer, a value that breaks no rule. It ends when
/// the body passes, nothing more can be left out, or [`MAX_PROBLEMS`] are
/// found.
pub(super) fn every_problem<T>(
    body: &serde_json::Value,
    check: impl Fn(&serde_json::Value) -> Result<T, Vec<FormProblem>>,
    placeholder: impl Fn(&str) -> Option<serde_json::Value>,
) -> Result<T, Vec<FormProblem>> {
    // A body that passes (every stored team at a start) is not copied.
    let mut found = match check(body) {
        Ok(made) => return Ok(made),
        Err(found) => Some(found),
    };
    let mut body = body.clone();
    let mut problems: Vec<FormProblem> = Vec::new();
    // The pointers of the problems listed, and of the members left out.
    let mut seen = BTreeSet::new();
    for _ in 0..MAX_PROBLEMS * 2 {
        let found = match found.take().map_or_else(|| check(&body), Err) {
            Ok(_) => break,
            Err(found) => found,
        };
        let mut went_on = false;
        for p in found {
            let made_by_us = seen.contains(&p.pointer);
            let left = match made_by_us {
                true => fill_in(&mut body, &p.pointer, &placeholder),
                false => leave_out(&mut body, &p.pointer)
                    .or_else(|| fill_in(&mut body, &p.pointer, &placeholder)),
            };
            if !made_by_us {
                seen.insert(p.pointer.clone());
                problems.push(p);
            }
            went_on |= left.is_some();
            seen.extend(left);
        }
        if !went_on || problems.len() >= MAX_PROBLEMS {
            break;
        }
    }
    problems.truncate(MAX_PROBLEMS);
    Err(problems)
}

/// For a member `pointer` names that is missing (or was left out): its
/// parent left out, or, for a member of the body itself, its
/// `placeholder` put in. The pointer of what changed, or `None`.
fn fill_in(
    body: &mut serde_json::Value,
    pointer: &str,
    placeholder: &dyn Fn(&str) -> Option<serde_json::Value>,
) -> Option<String> {
    if let Some((parent, _)) = pointer.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
        return leave_out(body, parent);
    }
    let value = placeholder(pointer)?;
    let serde_json::Value::Object(members) = body else {
        return None;
    };
    let fresh = (members.insert(pointer[1..].to_string(), value)).is_none();
    fresh.then(|| pointer.to_string())
}

/// Leaves out of `body` the member `pointer` names, or the array it is
/// in (the outermost): the pointer of what was left out, `None` when there
/// is none (the body as a whole, a member that is missing).
fn leave_out(body: &mut serde_json::Value, pointer: &str) -> Option<String> {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut at = body;
    let mut path = String::new();
    for (i, token) in tokens.iter().enumerate() {
        let serde_json::Value::Object(members) = at else {
            return None;
        };
        path.push('/');
        path.push_str(&super::form::escape(token));
        let last = i + 1 == tokens.len();
        if last || members.get(token).is_some_and(serde_json::Value::is_array) {
            return members.remove(token).map(|_| path);
        }
        at = members.get_mut(token)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_member_at_fault_is_left_out_or_its_array_whole() {
        let mut body = json!({"a": {"b/c": 1, "d": 2}, "list": [{"x": 1}, {"x": 2}]});
        assert_eq!(leave_out(&mut body, "/a/b~1c").as_deref(), Some("/a/b~1c"));
        assert_eq!(leave_out(&mut body, "/list/1/x").as_deref(), Some("/list"));
        assert_eq!(body, json!({"a": {"d": 2}}));
        for nothing in ["", "/missing", "/a/d/e", "/a/missing/x"] {
            assert_eq!(leave_out(&mut body, nothing), None, "{nothing}");
        }
        assert_eq!(body, json!({"a": {"d": 2}}));
    }

    #[test]
    fn a_member_made_missing_leaves_its_table_out_or_gets_a_placeholder() {
        let placeholder = |p: &str| (p == "/login_url").then(|| json!("https://x.invalid/"));
        let mut body = json!({"webhook": {"url": "x"}});
        assert_eq!(
            fill_in(&mut body, "/webhook/secret", &placeholder).as_deref(),
            Some("/webhook")
        );
        assert_eq!(body, json!({}));
        assert_eq!(
            fill_in(&mut body, "/login_url", &placeholder).as_deref(),
            Some("/login_url")
        );
        assert_eq!(body, json!({"login_url": "https://x.invalid/"}));
        let again = fill_in(&mut body, "/login_url", &placeholder);
        assert_eq!(again, None, "already there");
        assert_eq!(fill_in(&mut body, "/colour", &placeholder), None);
        assert_eq!(fill_in(&mut body, "", &placeholder), None);
    }

    /// A check that stops at its first problem: every member must be a
    /// number, and `n` is required.
    fn numbers(body: &serde_json::Value) -> Result<usize, Vec<FormProblem>> {
        let members = body.as_object().unwrap();
        let problem = |pointer: &str, detail: &str| {
            vec![FormProblem {
                pointer: pointer.into(),
                detail: detail.into(),
            }]
        };
        if !members.contains_key("n") {
            return Err(problem("/n", "is required but missing"));
        }
        match members.iter().find(|(_, v)| !v.is_number()) {
            Some((name, _)) => Err(problem(&format!("/{name}"), "must be a number")),
            None => Ok(members.len()),
        }
    }

    #[test]
    fn every_problem_is_found_and_none_that_leaving_out_made() {
        let none = |_: &str| None;
        assert_eq!(
            every_problem(&json!({"n": 1, "m": 2}), numbers, none),
            Ok(2)
        );
        let pointers = |found: Vec<FormProblem>| -> Vec<String> {
            found.into_iter().map(|p| p.pointer).collect()
        };
        // `n` left out is missing: that is not listed, and without a
        // placeholder nothing after it is checked.
        let body = json!({"a": "x", "n": "y", "z": true});
        let found = every_problem(&body, numbers, none).unwrap_err();
        assert_eq!(pointers(found), ["/a", "/n"]);
        // With a placeholder for `n`, the rest are found after it.
        let one = |p: &str| (p == "/n").then(|| json!(1));
        let found = every_problem(&body, numbers, one).unwrap_err();
        assert_eq!(pointers(found), ["/a", "/n", "/z"]);
        let mut many: serde_json::Map<String, serde_json::Value> =
            (0..100).map(|i| (format!("m{i:03}"), json!("x"))).collect();
        many.insert("n".into(), json!(1));
        let found = every_problem(&serde_json::Value::Object(many), numbers, none);
        assert_eq!(found.unwrap_err().len(), MAX_PROBLEMS);
    }
}
