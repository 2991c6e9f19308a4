//! `${NAME}` and `${file:PATH}` references in string values, filled from
//! the environment and from files.
//!
//! - `${NAME}`: the variable's value; unset is an error naming it.
//! - `${file:PATH}`: the file's content, one trailing newline (`\n` or
//!   `\r\n`) dropped, as Kubernetes and compose secrets are written
//!   (docs/decisions/0067-secrets-from-files.md). A relative `PATH` is
//!   relative to the folder of the file that names it. A missing,
//!   unreadable or non-UTF-8 file is an error naming the key and the path,
//!   never the content. Read at start and at every reload. A file its
//!   group or others may read is taken, with one warning naming it per process.
//! - `${NAME:-default}` (our extension, shell style): `default` when `NAME`
//!   is unset or empty. A warning names the variable (never a value), so a
//!   demo default never goes unnoticed in production; once per process,
//!   not again at every reload.
//! - `$${` writes a literal `${`.
//!
//! References are not nested, and a default cannot contain `}`. Keys are never
//! interpolated, only string values (also inside arrays and tables).
use std::path::Path;

use super::env::Environment;
use super::once::{warn_or_gather, StartupWarning};
use super::toml_file::display_path;
use super::ConfigError;

/// The warning of a `${NAME:-default}` that took its default.
const DEMO_DEFAULT: &str =
    "environment variable is unset or empty; using the default written in the configuration";

/// The warning of a `${file:PATH}` secret others may read.
const OPEN_SECRET: &str = "secret file may be read by group or others; give it mode 0600 or 0400";

/// What a `${file:…}` reference starts with.
const FILE_PREFIX: &str = "file:";

/// Replaces every reference in every string value of `table`. `dir` is the
/// folder of the file `table` was read from (relative `${file:…}` paths);
/// `prefix` is the key path of `table` in its file (for messages).
pub(super) fn interpolate_table(
    table: &mut toml::Table,
    env: &Environment,
    dir: &Path,
    file: &str,
    prefix: &str,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        interpolate_value(value, env, dir, file, &path)?;
    }
    Ok(())
}

fn interpolate_value(
    value: &mut toml::Value,
    env: &Environment,
    dir: &Path,
    file: &str,
    path: &str,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => {
            let expanded = expand(s, env, dir, |name| {
                // Once per process: a reload reads it again without a warning.
                let about = format!("{file} {path} {name}");
                warn_or_gather(StartupWarning::DemoDefault, &about, DEMO_DEFAULT, || {
                    tracing::warn!(variable = name, file, key = path, "{DEMO_DEFAULT}")
                });
            })
            .map_err(|problem| ConfigError::new(file, path, problem))?;
            *s = expanded;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, env, dir, file, &format!("{path}[{i}]"))?;
            }
        }
        toml::Value::Table(t) => interpolate_table(t, env, dir, file, path)?,
        _ => {}
    }
    Ok(())
}

/// Expands the references in `text` (`${file:…}` relative to `dir`).
/// `on_default` is called with the name of each variable whose default was
/// used. Errors never quote the text nor a file's content.
pub(super) fn expand(
    text: &str,
    env: &Environment,
    dir: &Path,
    mut on_default: impl FnMut(&str),
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or("unterminated \"${\" (write \"$${\" for a literal \"${\")")?;
            if let Some(path) = after[..end].strip_prefix(FILE_PREFIX) {
                out.push_str(&read_secret_file(dir, path)?);
                rest = &after[end + 1..];
                continue;
            }
            let (name, default) = split_reference(&after[..end])?;
            match (env.get(name), default) {
                (Some(Ok("")), Some(d)) => {
                    on_default(name);
                    out.push_str(d);
                }
                (Some(Ok(v)), _) => out.push_str(v),
                (Some(Err(())), _) => {
                    return Err(format!("environment variable {name} is not valid UTF-8"))
                }
                (None, Some(d)) => {
                    on_default(name);
                    out.push_str(d);
                }
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The largest secret file read: far above any key, certificate or token.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// The content of the file a `${file:PATH}` names, one trailing newline
/// dropped. Errors name the path (as written and as found), never the content.
fn read_secret_file(dir: &Path, path: &str) -> Result<String, String> {
    if path.trim().is_empty() {
        return Err("\"${file:}\" needs a path, e.g. \"${file:/run/secrets/pepper}\"".into());
    }
    let found = dir.join(path);
    let shown = display_path(&found);
    let unreadable = |e: std::io::Error| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist".to_string(),
            std::io::ErrorKind::PermissionDenied => "may not be read (permission denied)".into(),
            _ => format!("cannot be read ({})", e.kind()),
        };
        format!("secret file {shown} (${{file:{path}}}) {why}")
    };
    // A regular file of a secret's size: a FIFO or a device would hold a
    // reload (and every later one) on a read that never ends.
    let meta = std::fs::metadata(&found).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(format!(
            "secret file {shown} (${{file:{path}}}) is not a regular file"
        ));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(format!(
            "secret file {shown} (${{file:{path}}}) is over {MAX_SECRET_FILE} bytes"
        ));
    }
    if open_to_others(&meta) {
        let about = found.display().to_string();
        warn_or_gather(StartupWarning::SecretFileOpen, &about, OPEN_SECRET, || {
            tracing::warn!(file = %shown, "{OPEN_SECRET}");
        });
    }
    let bytes = std::fs::read(&found).map_err(unreadable)?;
    let mut text = String::from_utf8(bytes)
        .map_err(|_| format!("secret file {shown} (${{file:{path}}}) is not valid UTF-8"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Whether users other than the file's owner may read it (its group or
/// others have the read bit): a secret is taken anyway, with a warning
/// (docs/decisions/0091-a-secret-file-others-may-read.md).
#[cfg(unix)]
fn open_to_others(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o044 != 0
}

#[cfg(not(unix))]
fn open_to_others(_: &std::fs::Metadata) -> bool {
    false
}

/// `NAME` or `NAME:-default`.
fn split_reference(inner: &str) -> Result<(&str, Option<&str>), String> {
    let (name, default) = match inner.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (inner, None),
    };
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok((name, default))
    } else {
        Err("\"${...}\" needs a variable name of letters, digits and _ (write \"$${\" for a literal \"${\")".into())
    }
}

/// True when `raw` is exactly one reference (`${NAME}`, `${NAME:-default}`
/// or `${file:PATH}`) and nothing else: how channel files must write secrets.
pub(super) fn is_single_reference(raw: &str) -> bool {
    raw.strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(|inner| {
            !inner.contains('}')
                && (inner
                    .strip_prefix(FILE_PREFIX)
                    .is_some_and(|p| !p.trim().is_empty())
                    || split_reference(inner).is_ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment::from_pairs([("A", "alpha"), ("EMPTY", ""), ("B_2", "beta")])
    }

    fn run(text: &str) -> (Result<String, String>, Vec<String>) {
        let mut used = Vec::new();
        let r = expand(text, &env(), Path::new("."), |n| used.push(n.to_string()));
        (r, used)
    }

    #[test]
    fn replaces_references_anywhere_in_a_string() {
        assert_eq!(run("x-${A}-${B_2}-y").0.unwrap(), "x-alpha-beta-y");
        assert_eq!(
            run("no refs, $5 and $ alone").0.unwrap(),
            "no refs, $5 and $ alone"
        );
        assert_eq!(run("$${A} is literal").0.unwrap(), "${A} is literal");
        assert_eq!(run("${EMPTY}").0.unwrap(), "");
    }

    #[test]
    fn default_is_used_when_unset_or_empty_and_reported_by_name() {
        let (r, used) = run("${MISSING:-demo value}|${EMPTY:-d2}|${A:-unused}");
        assert_eq!(r.unwrap(), "demo value|d2|alpha");
        assert_eq!(used, vec!["MISSING", "EMPTY"]);
        assert_eq!(run("${MISSING:-}").0.unwrap(), "");
    }

    #[test]
    fn missing_variable_is_an_error_naming_it() {
        let err = run("pre ${NOPE_X} post").0.unwrap_err();
        assert_eq!(err, "environment variable NOPE_X is not set");
    }

    #[test]
    fn malformed_references_are_errors_that_quote_nothing() {
        assert!(run("${A").0.unwrap_err().contains("unterminated"));
        let err = run("${s3cret value}").0.unwrap_err();
        assert!(
            err.contains("variable name") && !err.contains("s3cret"),
            "{err}"
        );
        assert!(run("${}").0.is_err());
    }

    #[test]
    fn table_errors_name_file_and_key_path() {
        let mut t: toml::Table = "[a]\nlist = [\"ok\", \"${NOT_THERE_Q}\"]".parse().unwrap();
        let e = interpolate_table(&mut t, &env(), Path::new("."), "f.toml", "").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.toml: a.list[1]: environment variable NOT_THERE_Q is not set"
        );
        let mut t: toml::Table = "[a]\nb = \"${A}\"\nn = 3".parse().unwrap();
        interpolate_table(&mut t, &env(), Path::new("."), "f.toml", "").unwrap();
        assert_eq!(t["a"]["b"].as_str(), Some("alpha"));
    }

    #[test]
    fn process_environment_is_read() {
        let name = format!("CGTEST_{}", uuid::Uuid::now_v7().simple());
        std::env::set_var(&name, "from-process");
        let env = Environment::from_process();
        assert_eq!(
            expand(&format!("${{{name}}}"), &env, Path::new("."), |_| {}).unwrap(),
            "from-process"
        );
        std::env::remove_var(&name);
    }

    #[test]
    fn single_reference_detection() {
        assert!(is_single_reference("${TOKEN}"));
        assert!(is_single_reference("${TOKEN:-demo}"));
        assert!(!is_single_reference("literal"));
        assert!(!is_single_reference("x${TOKEN}"));
        assert!(!is_single_reference("${A}${B}"));
        assert!(!is_single_reference("${not valid}"));
        assert!(is_single_reference("${file:/run/secrets/token}"));
        assert!(is_single_reference("${file:token.txt}"));
        assert!(!is_single_reference("${file:}"));
        assert!(!is_single_reference("${file:a}${file:b}"));
    }

    /// A fresh folder for secret files.
    fn secrets_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cgsecrets-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn file_reference_reads_the_file_relative_to_the_naming_file_and_drops_one_newline() {
        let dir = secrets_dir();
        std::fs::write(dir.join("lf"), "s3cret-lf\n").unwrap();
        std::fs::write(dir.join("crlf"), "s3cret-crlf\r\n").unwrap();
        std::fs::write(dir.join("two"), "s3cret-two\n\n").unwrap();
        std::fs::write(dir.join("none"), "s3cret-none").unwrap();
        let env = env();
        let read = |t: &str| expand(t, &env, &dir, |_| {}).unwrap();
        assert_eq!(read("${file:lf}"), "s3cret-lf");
        assert_eq!(read("${file:crlf}"), "s3cret-crlf");
        assert_eq!(read("${file:two}"), "s3cret-two\n");
        assert_eq!(read("${file:none}"), "s3cret-none");
        let absolute = format!("x-${{file:{}}}-${{A}}", dir.join("lf").display());
        assert_eq!(
            expand(&absolute, &env, Path::new("/"), |_| {}).unwrap(),
            "x-s3cret-lf-alpha"
        );
    }

    #[test]
    fn a_missing_or_unreadable_secret_file_names_key_and_path_never_the_content() {
        let dir = secrets_dir();
        let mut t: toml::Table = "[a]\nsecret = \"${file:nope.txt}\"".parse().unwrap();
        let e = interpolate_table(&mut t, &env(), &dir, "f.toml", "").unwrap_err();
        assert_eq!(e.key, "a.secret");
        assert!(
            e.problem.contains("nope.txt") && e.problem.contains("does not exist"),
            "{e}"
        );

        std::fs::write(dir.join("binary"), [b's', 0xff, 0xfe]).unwrap();
        let err = expand("${file:binary}", &env(), &dir, |_| {}).unwrap_err();
        assert!(err.contains("binary") && err.contains("UTF-8"), "{err}");

        std::fs::create_dir_all(dir.join("a-folder")).unwrap();
        let err = expand("${file:a-folder}", &env(), &dir, |_| {}).unwrap_err();
        assert!(
            err.contains("a-folder") && err.contains("not a regular file"),
            "{err}"
        );
        assert!(expand("${file:}", &env(), &dir, |_| {}).is_err());
    }

    #[test]
    fn a_secret_file_is_a_regular_file_of_a_secrets_size() {
        let dir = secrets_dir();
        // A device never ends: refused before it is read.
        let err = expand("${file:/dev/zero}", &env(), &dir, |_| {}).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::write(dir.join("big"), vec![b'a'; 64 * 1024 + 1]).unwrap();
        let err = expand("${file:big}", &env(), &dir, |_| {}).unwrap_err();
        assert!(err.contains("big") && err.contains("over"), "{err}");
        std::fs::write(dir.join("edge"), vec![b'a'; 64 * 1024]).unwrap();
        assert_eq!(
            expand("${file:edge}", &env(), &dir, |_| {}).unwrap().len(),
            64 * 1024
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_file_others_may_read_warns_once_naming_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = secrets_dir();
        let write = |name: &str, mode: u32| {
            std::fs::write(dir.join(name), "s3cret\n").unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode))
                .unwrap();
        };
        write("private", 0o600);
        write("group", 0o640);
        write("world", 0o604);
        let read = |text: &str| {
            let (value, kept) =
                super::super::deferring(|| expand(text, &env(), &dir, |_| {}).unwrap());
            assert_eq!(value, "s3cret");
            kept.lines()
        };
        assert_eq!(read("${file:private}"), Vec::<String>::new());
        for name in ["group", "world"] {
            let lines = read(&format!("${{file:{name}}}"));
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(
                lines[0].contains(&display_path(&dir.join(name)))
                    && lines[0].contains("group or others")
                    && !lines[0].contains("s3cret"),
                "{lines:?}"
            );
            // Once per process: a reload reads it again without a warning.
            assert_eq!(read(&format!("${{file:{name}}}")), Vec::<String>::new());
        }
    }

    #[test]
    fn a_demo_default_warns_once_per_process_not_at_every_reload() {
        let dir = secrets_dir();
        let read = || {
            let mut table: toml::Table =
                toml::from_str("token = \"${CG_TEST_UNSET_ONCE:-demo}\"").unwrap();
            let ((), kept) = super::super::deferring(|| {
                interpolate_table(&mut table, &env(), &dir, "channels/once.toml", "").unwrap()
            });
            assert_eq!(table["token"].as_str(), Some("demo"));
            kept.lines()
        };
        let first = read();
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(
            first[0].contains("CG_TEST_UNSET_ONCE") && !first[0].contains("demo"),
            "{first:?}"
        );
        // A reload reads the file again: no second warning.
        assert_eq!(read(), Vec::<String>::new());
    }
}
