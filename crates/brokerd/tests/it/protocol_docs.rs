//! `docs/protocol.md` and `docs/protocol.schema.json` against the wire types
//! in `brokerd::protocol`: the schema is generated from them and checked in,
//! and every example line of the protocol page is read by them and, for
//! replies and events, written back byte for byte (the examples were pasted
//! from the daemon's output, so this is what keeps "the bytes on the wire do
//! not change" checked).
//!
//! After changing a wire type, regenerate the schema:
//!
//! ```sh
//! BROKERD_UPDATE_DIST=1 cargo test -p brokerd --test it protocol_docs
//! ```

use std::path::{Path, PathBuf};

use brokerd::protocol::{self, Event, Reply};
use brokerd::server::protocol::parse;
use serde_json::Value;

/// `docs/` is the workspace's, two levels above this crate.
fn docs(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name)
}

#[test]
fn the_schema_is_generated_from_the_wire_types() {
    let path = docs("protocol.schema.json");
    let want = protocol::schema();
    if std::env::var_os("BROKERD_UPDATE_DIST").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale; regenerate it with\n  BROKERD_UPDATE_DIST=1 cargo test -p brokerd --test it protocol_docs",
        path.display()
    );
}

/// The lines of the page's fenced blocks, except the Python example.
fn example_lines() -> Vec<String> {
    let text = std::fs::read_to_string(docs("protocol.md")).unwrap();
    let mut lines = Vec::new();
    let mut fence: Option<String> = None;
    for line in text.lines() {
        if let Some(lang) = line.strip_prefix("```") {
            fence = match fence {
                None => Some(lang.to_string()),
                Some(_) => None,
            };
            continue;
        }
        if fence.as_deref().is_some_and(|lang| lang != "python") {
            lines.push(line.to_string());
        }
    }
    lines
}

/// The request lines of the shell examples: every single-quoted JSON object
/// of a `$ echo '…'` or `$ printf '%s\n' '…' '…'` line.
fn requests() -> Vec<String> {
    example_lines()
        .iter()
        .filter(|l| l.starts_with("$ "))
        .flat_map(|l| {
            l.split('\'')
                .skip(1)
                .step_by(2)
                .filter(|q| q.starts_with('{') || *q == "not json")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_example_request_reads_as_its_operation() {
    let requests = requests();
    assert!(requests.len() > 20, "found only {requests:?}");
    let mut refused = Vec::new();
    for line in &requests {
        match parse(line) {
            Ok(parsed) => {
                // What the wire type holds is what the line said, `id` apart.
                let mut said: Value = serde_json::from_str(line).unwrap();
                said.as_object_mut().unwrap().remove("id");
                let held = serde_json::to_value(&parsed.request).unwrap();
                assert_eq!(held, said, "{line}");
                // And `Request`'s own Deserialize reads the same.
                let typed: protocol::Request = serde_json::from_str(line).unwrap();
                assert_eq!(typed, parsed.request, "{line}");
            }
            Err(e) => refused.push((line.as_str(), e.error.code.as_str())),
        }
    }
    // The page's malformed examples, and nothing else.
    assert_eq!(
        refused,
        [
            (
                r#"{"id":"b","op":"token","broker":"jainam","acount":"demo"}"#,
                "bad_request"
            ),
            ("not json", "bad_request"),
            (r#"{"id":{"n":7},"op":"frobnicate"}"#, "unknown_op"),
        ]
    );
}

#[test]
fn every_example_reply_and_event_is_written_back_byte_for_byte() {
    let (mut replies, mut events) = (0, 0);
    for line in example_lines().iter().filter(|l| l.starts_with('{')) {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let written = if value.get("ok").is_some() {
            replies += 1;
            Reply::parse(line)
                .unwrap_or_else(|e| panic!("{line}: {e}"))
                .to_line()
        } else {
            events += 1;
            serde_json::from_str::<Event>(line)
                .unwrap_or_else(|e| panic!("{line}: {e}"))
                .to_line()
        };
        assert_eq!(&written, line);
    }
    assert!(
        replies > 20 && events >= 4,
        "{replies} replies, {events} events"
    );
}

/// The error message the page shows for a misspelt field is the daemon's,
/// to the byte.
#[test]
fn the_pages_bad_request_messages_are_the_daemons() {
    let lines = example_lines();
    for (request, id) in [
        (
            r#"{"id":"b","op":"token","broker":"jainam","acount":"demo"}"#,
            "\"b\"",
        ),
        ("not json", ""),
        (r#"{"id":{"n":7},"op":"frobnicate"}"#, "{\"n\":7}"),
    ] {
        let e = parse(request).unwrap_err();
        let id =
            (!id.is_empty()).then(|| serde_json::value::RawValue::from_string(id.into()).unwrap());
        let line = brokerd::server::protocol::error_reply(id.as_deref(), &e.error);
        assert!(lines.contains(&line), "not on the page: {line}");
    }
}
