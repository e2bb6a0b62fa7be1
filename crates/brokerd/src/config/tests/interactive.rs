//! `[account.zerodha]`, `[account.breeze]`, `[callback]`, `notify_command`.

use std::time::Duration;

use chrono::NaiveTime;

use super::*;

const ZERODHA: &str = r#"
[[account]]
broker = "zerodha"
name = "main"
[account.zerodha]
api_key = "env:KITE_KEY"
api_secret = "env:KITE_SECRET"
"#;

const BREEZE: &str = r#"
[[account]]
broker = "breeze"
name = "main"
[account.breeze]
app_key = "env:KITE_KEY"
secret_key = "env:KITE_SECRET"
"#;

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

#[test]
fn zerodha_defaults() {
    let c = ok(ZERODHA).config;
    let z = c.accounts[0].zerodha.as_ref().unwrap();
    assert_eq!(z.api_root, "https://api.kite.trade");
    assert_eq!(z.login_root, "https://kite.zerodha.com");
    assert_eq!(z.api_key.expose(), KITE_KEY_VALUE);
    assert_eq!(z.api_secret.expose(), KITE_SECRET_VALUE);
    assert_eq!(z.user_id, None);
    assert_eq!(z.cutoff, hm(6, 0));
    assert_eq!(z.reminder.remind_at, Some(hm(8, 30)));
    assert_eq!(z.reminder.expiring_notice, Duration::from_secs(1800));
    assert!(c.callback.is_none());
    assert!(c.daemon.notify.is_none());
}

#[test]
fn breeze_defaults_and_overrides() {
    let c = ok(BREEZE).config;
    let b = c.accounts[0].breeze.as_ref().unwrap();
    assert_eq!(b.api_root, "https://api.icicidirect.com/breezeapi/api/v1");
    assert_eq!(b.login_root, "https://api.icicidirect.com/apiuser");
    assert_eq!(b.cutoff, hm(0, 0));
    assert_eq!(b.max_lifetime, Duration::from_secs(24 * 3600));

    let text = format!(
        "{BREEZE}user_id = \"AB12\"\ncutoff = \"23:59:30\"\nmax_lifetime = \"12h\"\nremind_at = \"\"\nexpiring_notice = \"5m\"\n"
    );
    let c = ok(&text).config;
    let b = c.accounts[0].breeze.as_ref().unwrap();
    assert_eq!(b.user_id.as_deref(), Some("AB12"));
    assert_eq!(b.cutoff, NaiveTime::from_hms_opt(23, 59, 30).unwrap());
    assert_eq!(b.max_lifetime, Duration::from_secs(12 * 3600));
    assert_eq!(b.reminder.remind_at, None);
    assert_eq!(b.reminder.expiring_notice, Duration::from_secs(300));
}

#[test]
fn bad_interactive_values_are_named_by_key() {
    let text = format!(
        "{ZERODHA}cutoff = \"6am\"\nuser_id = \"ab cd\"\napi_root = \"ftp://x\"\nremind_at = \"25:00\"\n"
    );
    let p = problems(&text);
    for key in ["cutoff", "user_id", "api_root", "remind_at"] {
        problem_on(&p, &format!("account[0].zerodha.{key}"));
    }
    let p = problems(&ZERODHA.replace("api_secret = \"env:KITE_SECRET\"\n", ""));
    let s = problem_on(&p, "account[0].zerodha.api_secret");
    assert!(s.message.contains("required"), "{s}");
    for p in &p {
        assert_no_secrets(&p.to_string());
    }
    let p = problems(&format!("{ZERODHA}api_root = \"simulator\"\n"));
    assert!(
        problem_on(&p, "account[0].zerodha.api_root")
            .message
            .contains("\"simulator\"")
    );
}

#[test]
fn callback_section() {
    let c = ok(&format!(
        "[callback]\nlisten = \"127.0.0.1:8765\"\n{ZERODHA}"
    ))
    .config;
    let cb = c.callback.unwrap();
    assert_eq!(cb.public_url, "http://127.0.0.1:8765");
    assert_eq!(
        cb.redirect_url(BrokerId::Zerodha, "main"),
        "http://127.0.0.1:8765/callback/zerodha/main"
    );
    let c = ok(&format!(
        "[callback]\nlisten = \"127.0.0.1:8765\"\npublic_url = \"https://vps.example.com/brokerd/\"\n{ZERODHA}"
    ))
    .config;
    assert_eq!(
        c.callback.unwrap().redirect_url(BrokerId::Breeze, "x"),
        "https://vps.example.com/brokerd/callback/breeze/x"
    );
    let p = problems(&format!("[callback]\nlisten = \"localhost\"\n{ZERODHA}"));
    assert_eq!(keys(&p), ["callback.listen"]);
    let p = problems(&format!("[callback]\n{ZERODHA}"));
    assert_eq!(keys(&p), ["callback.listen"]);
    let loaded = ok(&format!("[callback]\nlisten = \"0.0.0.0:8765\"\n{ZERODHA}"));
    assert!(
        loaded.warnings.iter().any(|w| w.contains("not a loopback")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn notify_command() {
    let c = ok(&format!(
        "[daemon]\nnotify_command = [\"/bin/alert\", \"--to\", \"ops\"]\nnotify_timeout = \"3s\"\n{ZERODHA}"
    ))
    .config;
    let n = c.daemon.notify.unwrap();
    assert_eq!(n.argv, ["/bin/alert", "--to", "ops"]);
    assert_eq!(n.timeout, Duration::from_secs(3));
    for bad in ["\"/bin/alert\"", "[]", "[\"\"]", "[1]"] {
        let p = problems(&format!("[daemon]\nnotify_command = {bad}\n{ZERODHA}"));
        assert_eq!(keys(&p), ["daemon.notify_command"], "{bad}");
    }
}

/// The example documents the defaults: writing them out changes nothing.
#[test]
fn example_interactive_values_are_the_named_defaults() {
    let (example, _creds) = load_example();
    let c = &example.config;
    let ez = c
        .account(BrokerId::Zerodha, "main")
        .unwrap()
        .zerodha
        .clone()
        .unwrap();
    let mz = ok(ZERODHA).config.accounts[0].zerodha.clone().unwrap();
    assert_eq!(
        (&ez.api_root, &ez.login_root, ez.cutoff, &ez.reminder),
        (&mz.api_root, &mz.login_root, mz.cutoff, &mz.reminder)
    );
    let eb = c
        .account(BrokerId::Breeze, "main")
        .unwrap()
        .breeze
        .clone()
        .unwrap();
    let mb = ok(BREEZE).config.accounts[0].breeze.clone().unwrap();
    assert_eq!(
        (
            &eb.api_root,
            &eb.login_root,
            eb.cutoff,
            eb.max_lifetime,
            &eb.reminder
        ),
        (
            &mb.api_root,
            &mb.login_root,
            mb.cutoff,
            mb.max_lifetime,
            &mb.reminder
        )
    );
    let notify = ok(&format!("[daemon]\nnotify_command = [\"x\"]\n{ZERODHA}")).config;
    assert_eq!(
        c.daemon.notify.as_ref().unwrap().timeout,
        notify.daemon.notify.unwrap().timeout
    );
}

#[test]
fn http_section() {
    let c = ok(&format!("[http]\nlisten = \"127.0.0.1:9187\"\n{ZERODHA}")).config;
    assert_eq!(c.http.unwrap().listen.to_string(), "127.0.0.1:9187");
    assert!(ok(ZERODHA).config.http.is_none(), "off by default");
    let p = problems(&format!("[http]\nlisten = \"localhost\"\n{ZERODHA}"));
    assert_eq!(keys(&p), ["http.listen"]);
    let p = problems(&format!("[http]\n{ZERODHA}"));
    assert_eq!(keys(&p), ["http.listen"]);
    let p = problems(&format!(
        "[http]\nlisten = \"127.0.0.1:9187\"\npath = \"/x\"\n{ZERODHA}"
    ));
    assert!(p.iter().any(|p| p.key.starts_with("http")), "{p:?}");
    let loaded = ok(&format!("[http]\nlisten = \"0.0.0.0:9187\"\n{ZERODHA}"));
    assert!(
        loaded.warnings.iter().any(|w| w.contains("not a loopback")),
        "{:?}",
        loaded.warnings
    );
}
