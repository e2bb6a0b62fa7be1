//! Broker URL keys: each key's path rule, with good and bad values, the
//! three mistakes the rules were made for, and the example config stating
//! every rule next to its key.

use super::*;
use crate::config::urls::{self, UrlRule};

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

/// A config whose key `rule.name` is `url`, and the key's full path.
fn with(rule: &UrlRule, url: &str) -> (String, String) {
    let line = format!("{} = {url:?}\n", rule.name);
    let text = match rule.table {
        "jainam" => format!("{ACCOUNT}[account.jainam]\n{line}"),
        "kotak_neo" => format!("{KOTAK}{line}"),
        "zerodha" => format!("{ZERODHA}{line}"),
        "breeze" => format!("{BREEZE}{line}"),
        "angel_one" => format!("{ANGEL}{line}"),
        other => panic!("no test account for {other}"),
    };
    (text, format!("account[0].{}.{}", rule.table, rule.name))
}

/// The value the account ends up with for `rule`'s key.
fn value_of(loaded: &Loaded, rule: &UrlRule) -> String {
    let a = &loaded.config.accounts[0];
    match (rule.table, rule.name) {
        ("jainam", "root") => a.jainam.as_ref().unwrap().root.clone(),
        ("kotak_neo", "login_host") => a.kotak_neo.as_ref().unwrap().login_host.clone(),
        ("zerodha", "api_root") => a.zerodha.as_ref().unwrap().api_root.clone(),
        ("zerodha", "login_root") => a.zerodha.as_ref().unwrap().login_root.clone(),
        ("zerodha", "ticker_root") => a.zerodha.as_ref().unwrap().ticker_root.clone(),
        ("breeze", "api_root") => a.breeze.as_ref().unwrap().api_root.clone(),
        ("breeze", "login_root") => a.breeze.as_ref().unwrap().login_root.clone(),
        ("angel_one", "api_root") => a.angel_one.as_ref().unwrap().api_root.clone(),
        other => panic!("unknown key {other:?}"),
    }
}

/// Asserts `url` is refused on `rule`'s key with a problem that names the
/// expected form and the SDK's own default; returns the problem's text.
fn refused(rule: &UrlRule, url: &str) -> String {
    let (text, key) = with(rule, url);
    let p = problems(&text);
    let problem = problem_on(&p, &key);
    assert!(
        problem.fix.contains(rule.sdk),
        "{url}: the fix does not quote the SDK: {problem}"
    );
    problem.to_string()
}

#[test]
fn every_rule_accepts_its_default_and_the_official_shape() {
    for rule in urls::ALL {
        // Absent: the default, which obeys its own rule.
        let (text, _) = with(&rule, rule.default);
        let loaded = ok(&text);
        assert_eq!(value_of(&loaded, &rule), rule.default);
        assert!(urls::check_path(&rule, rule.default).is_ok(), "{rule:?}");
        // A trailing slash (the SDKs write one) is dropped.
        let (text, _) = with(&rule, &format!("{}/", rule.default));
        assert_eq!(value_of(&ok(&text), &rule), rule.default);
        // Another host, a port, plain http to this machine: the path is
        // what the rule is about.
        for host in ["https://proxy.example.in:8443", "http://127.0.0.1:40123"] {
            let host = if rule.websocket {
                host.replacen("http", "ws", 1)
            } else {
                host.to_string()
            };
            let url = format!("{host}{}", rule.path);
            let (text, _) = with(&rule, &url);
            assert_eq!(value_of(&ok(&text), &rule), url);
        }
    }
}

#[test]
fn host_only_keys_refuse_any_path() {
    let cases = [
        (
            urls::JAINAM_ROOT,
            "https://jtrade.jainam.in:5000/interactive",
        ),
        (
            urls::JAINAM_ROOT,
            "https://jtrade.jainam.in:5000/apibinarymarketdata/",
        ),
        (
            urls::KOTAK_LOGIN_HOST,
            "https://mis.kotaksecurities.com/login",
        ),
        (
            urls::ZERODHA_API_ROOT,
            "https://api.kite.trade/session/token",
        ),
        (urls::ZERODHA_API_ROOT, "https://api.kite.trade/v3"),
        (urls::ZERODHA_LOGIN_ROOT, "https://kite.zerodha.com/connect"),
    ];
    for (rule, url) in cases {
        let text = refused(&rule, url);
        assert!(text.contains("is a host only"), "{text}");
        let host: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        assert!(text.contains(&format!("write {host:?}")), "{text}");
    }
}

#[test]
fn breeze_keys_need_exactly_their_path() {
    let cases = [
        (
            urls::BREEZE_API_ROOT,
            "https://api.icicidirect.com/breezeapi",
        ),
        (
            urls::BREEZE_API_ROOT,
            "https://api.icicidirect.com/breezeapi/api/v2",
        ),
        (
            urls::BREEZE_API_ROOT,
            "https://api.icicidirect.com/breezeapi/api/v1/customerdetails",
        ),
        (urls::BREEZE_LOGIN_ROOT, "https://api.icicidirect.com"),
        (
            urls::BREEZE_LOGIN_ROOT,
            "https://api.icicidirect.com/apiuser/login",
        ),
    ];
    for (rule, url) in cases {
        let text = refused(&rule, url);
        assert!(
            text.contains(&format!("write \"{}\"", rule.default)),
            "{text}"
        );
    }
}

/// The three mistakes of the issue, each of which used to pass.
#[test]
fn the_three_named_mistakes_are_refused_with_the_expected_form() {
    // Breeze's root without its path.
    let text = refused(&urls::BREEZE_API_ROOT, "https://api.icicidirect.com");
    assert!(
        text.starts_with("account[0].breeze.api_root: \"https://api.icicidirect.com\" has no path"),
        "{text}"
    );
    assert!(text.contains("must end in /breezeapi/api/v1"), "{text}");
    assert!(
        text.contains("write \"https://api.icicidirect.com/breezeapi/api/v1\""),
        "{text}"
    );
    assert!(
        text.contains("https://api.icicidirect.com/breezeapi/api/v1/"),
        "the SDK's default: {text}"
    );

    // Kite's login root copied from the SDK, /connect/login included.
    let text = refused(
        &urls::ZERODHA_LOGIN_ROOT,
        "https://kite.zerodha.com/connect/login",
    );
    assert!(
        text.starts_with("account[0].zerodha.login_root: ")
            && text.contains("has the path /connect/login")
            && text.contains("brokerd appends /connect/login itself")
            && text.contains("write \"https://kite.zerodha.com\""),
        "{text}"
    );
    assert!(
        text.contains("_default_login_uri is https://kite.zerodha.com/connect/login"),
        "{text}"
    );

    // Kotak's host with the login path.
    let text = refused(
        &urls::KOTAK_LOGIN_HOST,
        "https://mis.kotaksecurities.com/login/1.0",
    );
    assert!(
        text.starts_with("account[0].kotak_neo.login_host: ")
            && text.contains("has the path /login/1.0")
            && text.contains("write \"https://mis.kotaksecurities.com\""),
        "{text}"
    );
}

#[test]
fn malformed_urls_name_the_expected_form() {
    for rule in urls::ALL {
        for bad in ["api.kite.trade", "ftp://h", "https://h:x", "https://h//x"] {
            let text = refused(&rule, bad);
            assert!(text.contains(&rule.expected()), "{text}");
        }
    }
}

#[test]
fn every_problem_in_one_run() {
    // Both Kite keys wrong: both are reported, not the first only.
    let text = format!(
        "{ZERODHA}api_root = \"https://api.kite.trade/v3\"\n\
         login_root = \"https://kite.zerodha.com/connect/login\"\n"
    );
    let p = problems(&text);
    assert_eq!(
        keys(&p),
        [
            "account[0].zerodha.api_root",
            "account[0].zerodha.login_root"
        ]
    );
}

#[test]
fn simulator_is_not_a_url_to_brokerd() {
    // brokerd-demo rewrites "simulator" before brokerd reads the file;
    // brokerd itself has no simulator to substitute.
    for rule in urls::ALL {
        let (text, key) = with(&rule, "simulator");
        let p = problems(&format!("[simulator]\n{text}"));
        assert!(
            problem_on(&p, &key).message.contains("\"simulator\""),
            "{p:?}"
        );
        assert!(
            problem_on(&p, "simulator").fix.contains("brokerd-demo"),
            "{p:?}"
        );
    }
}

/// Comment lines directly above `name = ` in the example's `[account.table]`,
/// joined into one line.
fn example_comment(example: &str, rule: &UrlRule) -> String {
    let section = format!("[account.{}]", rule.table);
    let start = example.find(&section).expect("the table is in the example");
    let lines: Vec<&str> = example[start..].lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("{} = ", rule.name)))
        .expect("the key is in the example");
    let mut comment: Vec<&str> = lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect();
    comment.reverse();
    comment.join(" ")
}

#[test]
fn the_example_states_each_rule_and_sdk_default_next_to_its_key() {
    let example = std::fs::read_to_string(example_path()).unwrap();
    for rule in urls::ALL {
        let comment = example_comment(&example, &rule);
        for want in [
            rule.expected(),
            rule.sdk.to_string(),
            format!("Default: \"{}\"", rule.default),
        ] {
            assert!(
                comment.contains(&want),
                "the example's comment on {} lacks {want:?}:\n{comment}",
                rule.key()
            );
        }
    }
}

#[test]
fn the_ticker_root_is_a_websocket_url() {
    let rule = urls::ZERODHA_TICKER_ROOT;
    assert_eq!(rule.default, "wss://ws.kite.trade");
    // An https URL (the REST root copied here) is refused with the form.
    let text = refused(&rule, "https://api.kite.trade");
    assert!(text.contains("must start with wss://"), "{text}");
    assert!(text.contains(&rule.expected()), "{text}");
    let text = refused(&rule, "wss://ws.kite.trade/v3");
    assert!(text.contains("is a host only"), "{text}");
    // Plain ws:// to another machine is allowed with a warning.
    let (text, key) = with(&rule, "ws://10.0.0.5:9000");
    let loaded = ok(&text);
    assert_eq!(value_of(&loaded, &rule), "ws://10.0.0.5:9000");
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.starts_with(&format!("{key}: ")) && w.contains("is plain ws")),
        "{:?}",
        loaded.warnings
    );
    // And the REST keys still refuse a websocket URL.
    let text = refused(&urls::ZERODHA_API_ROOT, "wss://ws.kite.trade");
    assert!(text.contains("must start with https://"), "{text}");
}
