//! The Lua scripts the store runs, and the rule each keeps: it touches
//! only the keys passed to it in `KEYS` (Redis Cluster and key-checking
//! proxies rely on it). Each script's caller sends it: the commit
//! (`commit.rs`), a queue's claim and move (`indexes.rs`), the teams' due
//! indexes (`due.rs`).
use super::commit::COMMIT_LUA;
use super::due::{DUE_CLAIM_LUA, DUE_NOTE_LUA, DUE_RELEASE_LUA};
use super::indexes::{CLAIM_DUE_LUA, MOVE_UNCHANGED_LUA};

/// Every script the store runs (a cluster node that lacks one is given it).
pub(super) const SCRIPTS: &[&str] = &[
    COMMIT_LUA,
    CLAIM_DUE_LUA,
    MOVE_UNCHANGED_LUA,
    DUE_CLAIM_LUA,
    DUE_RELEASE_LUA,
    DUE_NOTE_LUA,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Commands that take no key.
    const KEYLESS: &[&str] = &["'TIME'"];

    /// The arguments of a call, from just after its `(` to the matching `)`.
    fn arguments(text: &str) -> Vec<&str> {
        let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
        for (i, c) in text.char_indices() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' if depth == 0 => {
                    out.push(text[start..i].trim());
                    return out;
                }
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(text[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        out
    }

    /// The `redis.call`s and `redis.pcall`s of `script` whose key is not
    /// passed in `KEYS`: directly (`KEYS[...]`), through a local bound to
    /// one, or through a parameter of a local function whose every call
    /// passes such a key where a redis call takes that parameter as its key.
    fn calls_outside_keys(script: &str) -> Vec<String> {
        let mut aliases: Vec<&str> = Vec::new();
        let mut functions: Vec<(&str, Vec<&str>)> = Vec::new();
        for line in script.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("local function ") {
                if let Some((name, params)) = rest.split_once('(') {
                    let params = arguments(params);
                    aliases.extend(&params);
                    functions.push((name.trim(), params));
                }
            } else if let Some((name, value)) =
                line.strip_prefix("local ").and_then(|l| l.split_once('='))
            {
                if value.trim().starts_with("KEYS[") {
                    aliases.push(name.trim());
                }
            }
        }
        let a_key =
            |arg: &str| (arg.starts_with("KEYS[") && arg.ends_with(']')) || aliases.contains(&arg);
        let mut outside = Vec::new();
        // What the redis calls take as their key.
        let mut keys_taken = Vec::new();
        for call in ["redis.call(", "redis.pcall("] {
            for args in script.split(call).skip(1).map(arguments) {
                let command = args.first().copied().unwrap_or("");
                if KEYLESS.contains(&command) {
                    continue;
                }
                if !args.get(1).is_some_and(|k| a_key(k)) {
                    outside.push(format!("{call}{})", args.join(", ")));
                }
                keys_taken.extend(args.get(1).copied());
            }
        }
        for (f, params) in functions {
            let keyed: Vec<usize> = (0..params.len())
                .filter(|&i| keys_taken.contains(&params[i]))
                .collect();
            let pattern = format!("{f}(");
            for (at, _) in script.match_indices(&pattern) {
                // A call of `f`, not of a name ending in it (`refused(`
                // for `used(`), nor its definition.
                let named = script[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                if named || script[..at].ends_with("function ") {
                    continue;
                }
                let args = arguments(&script[at + pattern.len()..]);
                if !keyed.iter().all(|&i| args.get(i).is_some_and(|a| a_key(a))) {
                    outside.push(format!("{f}({})", args.join(", ")));
                }
            }
        }
        outside
    }

    /// Redis' scripting rule, which Redis Cluster and key-checking proxies
    /// rely on: a script touches only the keys passed in `KEYS`, never one
    /// built from `ARGV` or from stored data.
    #[test]
    fn scripts_touch_only_the_keys_passed_in_keys() {
        // Every script the store runs, each named by its first line.
        for script in SCRIPTS {
            let name = script.lines().next().unwrap_or_default();
            assert!(name.starts_with("-- chatgate "), "{name}");
            assert!(script.contains("redis.call("), "{name}");
            assert_eq!(calls_outside_keys(script), Vec::<String>::new(), "{name}");
        }
        // What the check catches: the companion read the store once did.
        let built = "local c = redis.call('GET', KEYS[1])\nreturn redis.call('GET', ARGV[1] .. c)";
        assert_eq!(
            calls_outside_keys(built),
            ["redis.call('GET', ARGV[1] .. c)"]
        );
        let through = "local function f(k)\n  redis.call('DEL', k)\nend\nf(KEYS[2])\nf(ARGV[1])";
        assert_eq!(calls_outside_keys(through), ["f(ARGV[1])"]);
        let suffix =
            "local function used(k)\n  redis.call('DEL', k)\nend\nused(KEYS[2])\nrefused(ARGV[1])";
        assert_eq!(
            calls_outside_keys(suffix),
            Vec::<String>::new(),
            "refused is not used"
        );
        let protected = "local r = redis.pcall('GET', ARGV[1])\nreturn redis.pcall('GET', KEYS[1])";
        assert_eq!(
            calls_outside_keys(protected),
            ["redis.pcall('GET', ARGV[1])"]
        );
        // A parameter no redis call takes as its key may be anything.
        let checked = "local function g(reply, k)\n  redis.call('DEL', k)\n  return reply\nend\n\
                       g(ARGV[1], KEYS[1])\ng(KEYS[1], ARGV[2])";
        assert_eq!(calls_outside_keys(checked), ["g(KEYS[1], ARGV[2])"]);
    }
}
