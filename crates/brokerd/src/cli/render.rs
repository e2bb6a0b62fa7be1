//! Text renderings for brokerctl: the status table, single fields, and
//! shell `export` lines.

use serde_json::Value;

/// A readable table of `status` accounts. When the daemon shares its
/// store with others (entries carry `role`), a LEADER column names the
/// host that leads each session, marked `(this)` when it is this daemon.
pub fn status_table(accounts: &Value) -> String {
    let shared = accounts
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| a.get("role").is_some());
    let mut rows = vec![
        [
            "ACCOUNT",
            "STATE",
            "GEN",
            "EXPIRES IN",
            "LAST LOGIN",
            "LAST ERROR",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for a in accounts.as_array().into_iter().flatten() {
        let name = format!(
            "{}/{}{}",
            a["broker"].as_str().unwrap_or("?"),
            a["account"].as_str().unwrap_or("?"),
            if a["api"] == "market" { "/market" } else { "" }
        );
        let expires = a["expires_in_secs"].as_i64().map_or("-".into(), human_secs);
        let last_login = a["last_login_at"].as_str().unwrap_or("-").to_string();
        let mut error = a["last_error"]["message"]
            .as_str()
            .map_or("-".into(), |m| m.to_string());
        match (a["queued_behind"].as_u64(), a["retry_after_secs"].as_u64()) {
            (Some(ahead), estimate) => {
                error = format!(
                    "login queued at the broker host behind {ahead} (about {})",
                    human_secs(estimate.unwrap_or(1) as i64)
                );
            }
            (None, Some(r)) => error = format!("{error} (retry in {})", human_secs(r as i64)),
            (None, None) => {}
        }
        if a["state"] == "auth_required" {
            error = format!(
                "{error}; LOG IN: brokerctl login-url {} --account {}",
                a["broker"].as_str().unwrap_or("?"),
                a["account"].as_str().unwrap_or("?")
            );
        }
        for w in a["warnings"].as_array().into_iter().flatten() {
            error = format!("{error}; WARNING: {}", w.as_str().unwrap_or(""));
        }
        let mut row = vec![
            name,
            a["state"].as_str().unwrap_or("?").to_string(),
            a["generation"].to_string(),
            expires,
            last_login,
        ];
        if shared {
            row.push(leader_cell(a));
        }
        row.push(error);
        rows.push(row);
    }
    if shared {
        rows[0].insert(5, "LEADER".to_string());
    }
    let padded = rows[0].len() - 1;
    let widths: Vec<usize> = (0..padded)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i < padded {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

/// The LEADER cell: the leading host, `(this)` when it is this daemon,
/// `none` while no daemon leads, `? (detached)` when this daemon cannot
/// reach the database.
fn leader_cell(a: &Value) -> String {
    let host = a["leader"].as_str();
    match (a["role"].as_str(), host) {
        (Some("leader"), Some(h)) => format!("{h} (this)"),
        (Some("detached"), _) => "? (detached)".to_string(),
        (_, Some(h)) => h.to_string(),
        (_, None) => "none".to_string(),
    }
}

/// `3725` → `1h02m`.
fn human_secs(s: i64) -> String {
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// One value of a session: a top-level key, a field, or a header.
pub fn field(session: &Value, name: &str) -> Option<String> {
    let v = session
        .get(name)
        .filter(|v| !v.is_object())
        .or_else(|| session["fields"].get(name))
        .or_else(|| session["headers"].get(name))?;
    Some(match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// `export BROKER_ACCOUNT_NAME='value'` lines for the token, generation,
/// expiry and every scalar field.
pub fn export_lines(session: &Value) -> String {
    env_pairs(session)
        .into_iter()
        .map(|(name, value)| format!("export {name}='{}'\n", value.replace('\'', "'\\''")))
        .collect()
}

/// The variables of [`export_lines`] as (name, value) pairs, unquoted:
/// `BROKER_ACCOUNT[_MARKET]_NAME` for the token, generation, expiry and
/// every scalar field (arrays joined with commas). `brokerctl exec` puts
/// exactly these into its command's environment.
pub fn env_pairs(session: &Value) -> Vec<(String, String)> {
    let mut prefix = format!(
        "{}_{}",
        session["broker"].as_str().unwrap_or(""),
        session["account"].as_str().unwrap_or("")
    );
    if session["api"] == "market" {
        prefix.push_str("_market");
    }
    let prefix = shell_name(&prefix);
    let mut out = Vec::new();
    let mut pair = |name: &str, v: &Value| {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
                .collect::<Vec<_>>()
                .join(","),
            Value::Null | Value::Object(_) => return,
            other => other.to_string(),
        };
        out.push((format!("{prefix}_{}", shell_name(name)), text));
    };
    for key in ["token", "generation", "expires_at"] {
        pair(key, &session[key]);
    }
    if let Some(fields) = session["fields"].as_object() {
        for (k, v) in fields {
            pair(k, v);
        }
    }
    out
}

/// `jainam-main.x` → `JAINAM_MAIN_X`: a valid shell variable name part.
fn shell_name(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session() -> Value {
        json!({"broker":"jainam","account":"main","api":"interactive","generation":3,"token":"t'k",
               "expires_at":"2026-11-25T00:00:00+05:30","headers":{"Authorization":"t'k"},
               "fields":{"user_id":"U1","client_codes":["A","B"],"is_investor_client":true}})
    }

    #[test]
    fn export_quotes_for_the_shell() {
        let out = export_lines(&session());
        assert!(
            out.contains("export JAINAM_MAIN_TOKEN='t'\\''k'\n"),
            "{out}"
        );
        assert!(out.contains("export JAINAM_MAIN_GENERATION='3'\n"));
        assert!(out.contains("export JAINAM_MAIN_CLIENT_CODES='A,B'\n"));
    }

    #[test]
    fn field_finds_top_level_fields_and_headers() {
        let s = session();
        assert_eq!(field(&s, "generation").unwrap(), "3");
        assert_eq!(field(&s, "user_id").unwrap(), "U1");
        assert_eq!(field(&s, "Authorization").unwrap(), "t'k");
        assert_eq!(field(&s, "nope"), None);
    }

    #[test]
    fn table_has_a_row_per_account() {
        let t = status_table(
            &json!([{"broker":"jainam","account":"main","api":"market","state":"active","generation":2,
            "expires_in_secs":3725,"last_login_at":"x","last_error":null,"warnings":["soon"]}]),
        );
        assert!(t.contains("jainam/main/market"), "{t}");
        assert!(t.contains("1h02m"));
        assert!(t.contains("WARNING: soon"));
    }

    #[test]
    fn a_shared_store_adds_the_leader_column_and_a_single_one_does_not() {
        let entry = |role: &str, leader: Value| {
            json!({"broker":"jainam","account":"main","api":"interactive","state":"active",
            "generation":2,"expires_in_secs":60,"last_login_at":"x","last_error":null,
            "warnings":[],"role":role,"leader":leader})
        };
        let t = status_table(&json!([entry("leader", json!("vps-a"))]));
        let header = t.lines().next().unwrap();
        assert!(header.contains("LEADER"), "{t}");
        assert!(t.contains("vps-a (this)"), "{t}");
        let t = status_table(&json!([entry("follower", json!("vps-b"))]));
        assert!(t.contains("vps-b ") && !t.contains("(this)"), "{t}");
        let t = status_table(&json!([entry("follower", Value::Null)]));
        assert!(t.lines().nth(1).unwrap().contains("none"), "{t}");
        let t = status_table(&json!([entry("detached", json!("vps-a"))]));
        assert!(t.contains("? (detached)"), "{t}");
        let single = status_table(
            &json!([{"broker":"jainam","account":"main","api":"interactive","state":"active",
            "generation":2,"expires_in_secs":60,"last_login_at":"x","last_error":null,"warnings":[]}]),
        );
        assert!(!single.contains("LEADER"), "{single}");
    }

    #[test]
    fn a_queued_login_shows_its_place_not_a_retry() {
        let t = status_table(
            &json!([{"broker":"jainam","account":"desk7","api":"interactive",
            "state":"refreshing","generation":0,"expires_in_secs":null,"last_login_at":null,
            "last_error":null,"warnings":[],"queued_behind":37,"retry_after_secs":4}]),
        );
        assert!(
            t.contains("queued at the broker host behind 37 (about 4s)"),
            "{t}"
        );
        assert!(!t.contains("retry in"), "{t}");
    }
}
