//! `brokerctl history`: the `--since` argument and the table of audit rows.

use serde_json::Value;

/// Parses `--since`: a duration such as `90s`, `15m`, `2h`, `7d` or
/// `1h30m`, or a plain number of seconds. Returns seconds.
pub fn parse_since(text: &str) -> Result<u64, String> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Ok(secs);
    }
    humantime::parse_duration(text.trim())
        .map(|d| d.as_secs())
        .map_err(|e| format!("{e}; write a duration such as 90s, 15m, 2h or 7d"))
}

/// A readable table of `history` events, newest first as the daemon sent
/// them; then a line saying when older events were left out.
pub fn table(reply: &Value) -> String {
    let mut rows = vec![
        ["TIME (IST)", "EVENT", "SESSION", "GEN", "DETAIL"]
            .map(String::from)
            .to_vec(),
    ];
    for e in reply["events"].as_array().into_iter().flatten() {
        let session = match (e["account"].as_str(), e["api"].as_str()) {
            (Some(account), Some(api)) => format!(
                "{}/{account}{}",
                e["broker"].as_str().unwrap_or("?"),
                if api == "market" { "/market" } else { "" }
            ),
            // A daemon row (a key rotation): no account.
            _ => e["broker"].as_str().unwrap_or("?").to_string(),
        };
        rows.push(vec![
            // `2026-11-24T08:08:00+05:30` → `2026-11-24 08:08:00`: every
            // time here is IST, as the header says.
            e["at"].as_str().map_or("?".into(), |t| {
                t.get(..19).unwrap_or(t).replacen('T', " ", 1)
            }),
            e["event"].as_str().unwrap_or("?").to_string(),
            session,
            e["generation"]
                .as_u64()
                .map_or("-".into(), |g| g.to_string()),
            e["detail"].as_str().unwrap_or("").to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            match widths.get(i) {
                Some(w) => out.push_str(&format!("{cell:<w$}  ")),
                None => out.push_str(cell),
            }
        }
        out.push('\n');
    }
    if reply["truncated"] == true {
        out.push_str(&format!(
            "(only the newest {}; use --limit or --since for others)\n",
            reply["limit"]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_takes_durations_and_seconds() {
        assert_eq!(parse_since("90"), Ok(90));
        assert_eq!(parse_since("15m"), Ok(900));
        assert_eq!(parse_since("2h"), Ok(7200));
        assert_eq!(parse_since("7d"), Ok(7 * 86400));
        assert!(parse_since("soon").unwrap_err().contains("15m"));
    }

    #[test]
    fn table_shows_sessions_daemon_rows_and_truncation() {
        let t = table(&json!({"limit": 2, "truncated": true, "events": [
            {"at":"2026-11-24T08:08:00+05:30","event":"key_rotated","broker":"brokerd","account":null,
             "api":null,"generation":null,"detail":"key k1 -> k2: 2 session(s) re-encrypted"},
            {"at":"2026-11-24T08:07:59+05:30","event":"login_ok","broker":"jainam","account":"main",
             "api":"market","generation":3,"detail":"ok"}]}));
        assert!(t.contains("2026-11-24 08:08:00  key_rotated"), "{t}");
        assert!(t.contains("jainam/main/market"), "{t}");
        assert!(t.contains(" 3 "), "{t}");
        assert!(t.contains("only the newest 2"), "{t}");
    }
}
