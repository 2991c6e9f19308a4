//! `chatgate check-texts` (docs/configuration.md#sms-length): one line per
//! channel, language and key, `CHANNEL TAG KEY ENCODING SEGMENTS`; exit 1
//! when a text is over `locale.max_sms_segments`, a limit that also stops
//! the configuration from loading.
use crate::helpers::*;

/// Runs `chatgate check-texts` on `app`'s configuration.
fn check_texts(app: &TestApp) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .arg("check-texts")
        .arg("--config")
        .arg(app.dir.join("config/chatgate.toml"))
        .env_remove("CHATGATE_CONFIG")
        .output()
        .unwrap()
}

fn append(path: &std::path::Path, text: &str) {
    let old = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, format!("{old}\n{text}\n")).unwrap();
}

#[tokio::test]
async fn check_texts_prints_every_sms_text_and_fails_over_the_limit() {
    let Some(app) = spawn_with(Backend::Memory, Setup::default()).await else {
        return;
    };
    let out = check_texts(&app);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    // The acme team's sms channel, one line per key it can send (no
    // network or wallet link: it has neither section).
    assert_eq!(lines.len(), 8, "{stdout}");
    assert!(!stdout.contains("network_link"), "{stdout}");
    assert!(lines.iter().all(|l| l.split(' ').count() == 5), "{stdout}");
    assert!(lines.contains(&"sms en otp GSM-7 1"), "{stdout}");
    assert!(lines.contains(&"sms en login_link GSM-7 1"), "{stdout}");

    let system = app.dir.join("config/chatgate.toml");
    append(&system, "[defaults.locale]\nmax_sms_segments = 1");
    // Every built-in text acme can send fits one segment.
    let out = check_texts(&app);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    chatgate::config::load(&system).unwrap();
    let long = "ć".repeat(71);
    let team = app.dir.join("config/teams/acme.toml");
    append(
        &team,
        &format!("[settings.templates]\nexpired = \"{long}\""),
    );
    let out = check_texts(&app);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.lines().any(|l| l == "sms en expired UCS-2 2"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "sms en otp GSM-7 1"),
        "{stdout}"
    );
    assert!(stderr.contains("sms en expired: 2 segments"), "{stderr}");

    // `serve` (and a reload) refuse the same configuration.
    let err = chatgate::config::load(&system).unwrap_err();
    assert!(err.file.ends_with("acme.toml"), "{err}");
    assert_eq!(err.key, "settings.templates.expired");
    assert!(err.problem.contains("2 SMS segments (UCS-2)"), "{err}");
    assert!(err.problem.contains("twilio channel \"sms\""), "{err}");
    assert!(err.problem.contains("\"en\""), "{err}");
    match app.reloader.reload().await {
        chatgate::app::Reloaded::Refused(e) => {
            assert!(e.to_string().contains("settings.templates.expired"), "{e}")
        }
        chatgate::app::Reloaded::Applied { .. } => panic!("a reload over the limit applied"),
    }
}
