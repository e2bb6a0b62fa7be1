//! Tests of the key: parsing, files and their modes, sources, and the AEAD.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A key file as `brokerctl keygen` writes it, returning the key's id.
fn key_file(path: &Path, mode: u32) -> String {
    let key = EncryptionKey::generate();
    fs::write(path, format!("{}\n", key.to_base64().expose())).unwrap();
    set_mode(path, mode);
    key.id().to_string()
}

#[test]
fn base64_round_trip_and_id() {
    let key = EncryptionKey::generate();
    let text = key.to_base64();
    assert_eq!(text.expose().len(), 44);
    let again = EncryptionKey::from_base64(&format!("  {}\n", text.expose())).unwrap();
    assert_eq!(again.id(), key.id());
    assert_eq!(again.bytes, key.bytes);
    // Without padding too.
    let unpadded = EncryptionKey::from_base64(text.expose().trim_end_matches('=')).unwrap();
    assert_eq!(unpadded.id(), key.id());

    assert_eq!(key.id().len(), 9);
    assert!(key.id().starts_with('k'));
    assert!(key.id()[1..].chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(key.id(), EncryptionKey::generate().id());
    // The id of a known key is stable: "k" + 8 hex of SHA-256 of 32 zero bytes.
    let zero = EncryptionKey::from_base64(&STANDARD.encode([0u8; 32])).unwrap();
    assert_eq!(zero.id(), "k66687aad");

    let debug = format!("{key:?}");
    assert!(debug.contains(key.id()));
    assert!(!debug.contains(text.expose()));
}

#[test]
fn wrong_length_and_garbage_are_rejected_without_echo() {
    let short = STANDARD.encode([7u8; 16]);
    match EncryptionKey::from_base64(&short) {
        Err(KeyError::WrongLength { len: 16, .. }) => {}
        other => panic!("expected WrongLength, got {other:?}"),
    }
    let err = EncryptionKey::from_base64("not*base64*SECRETISH").unwrap_err();
    assert!(matches!(err, KeyError::NotBase64 { .. }));
    assert!(!err.to_string().contains("SECRETISH"));
    assert!(err.to_string().contains("brokerctl keygen"));
}

#[test]
fn group_readable_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brokerd.key");
    key_file(&path, 0o640);
    let reference = SecretRef::File(path.clone());
    let err = load_key(None, Some(&reference), false).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, KeyError::Permissions { mode: 0o640, .. }));
    assert!(
        text.contains(&format!("chmod 600 {}", path.display())),
        "{text}"
    );
    assert!(text.contains("0640"), "{text}");

    set_mode(&path, 0o604);
    assert!(load_key(None, Some(&reference), false).is_err());
    set_mode(&path, 0o600);
    assert!(load_key(None, Some(&reference), false).is_ok());
}

#[test]
fn credential_files_may_show_acl_group_bits() {
    // What systemd leaves when it grants access by ACL: mask in group bits.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brokerd-key");
    let id = key_file(&path, 0o440);
    assert_eq!(read_key_file(&path, 0o007).unwrap().id(), id);
    set_mode(&path, 0o444);
    assert!(matches!(
        read_key_file(&path, 0o007),
        Err(KeyError::Permissions { .. })
    ));
}

#[test]
fn create_if_missing_writes_a_private_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/state/brokerd.key");
    let reference = SecretRef::File(path.clone());

    let err = load_key(None, Some(&reference), false).unwrap_err();
    assert!(matches!(err, KeyError::FileMissing { .. }));
    assert!(err.to_string().contains("brokerctl keygen"));
    assert!(!path.exists());

    let created = load_key(None, Some(&reference), true).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(mode_of(path.parent().unwrap()), 0o700);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n", created.to_base64().expose()));

    let again = load_key(None, Some(&reference), true).unwrap();
    assert_eq!(again.id(), created.id());
    assert_eq!(
        load_key(None, Some(&reference), false).unwrap().id(),
        created.id()
    );
}

#[test]
fn write_key_file_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let first = EncryptionKey::generate();
    write_key_file(&path, &first).unwrap();
    let err = write_key_file(&path, &EncryptionKey::generate()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    let reference = SecretRef::File(path);
    assert_eq!(
        load_key(None, Some(&reference), false).unwrap().id(),
        first.id()
    );
}

#[test]
fn raw_32_byte_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.key");
    // Bytes that are not valid UTF-8, as a raw random key usually is not.
    let bytes: [u8; 32] = std::array::from_fn(|i| 0xe0 ^ i as u8);
    fs::write(&path, bytes).unwrap();
    set_mode(&path, 0o400);
    let key = load_key(None, Some(&SecretRef::File(path)), false).unwrap();
    assert_eq!(key.bytes, bytes);
}

#[test]
fn env_value_wins_over_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brokerd.key");
    let file_id = key_file(&path, 0o600);
    let from_env = EncryptionKey::generate();
    let env_text = from_env.to_base64();
    let reference = SecretRef::File(path);

    let key = load_key(Some(env_text.expose()), Some(&reference), false).unwrap();
    assert_eq!(key.id(), from_env.id());
    assert_ne!(key.id(), file_id);
    // A blank BROKERD_KEY counts as unset.
    assert_eq!(
        load_key(Some("  "), Some(&reference), false).unwrap().id(),
        file_id
    );
    // A bad BROKERD_KEY is an error naming it, not a silent fallback.
    let err = load_key(Some("AAAA"), Some(&reference), false).unwrap_err();
    assert!(err.to_string().contains("BROKERD_KEY"), "{err}");
}

#[test]
fn missing_and_literal_keys_are_explained() {
    let err = load_key(None, None, true).unwrap_err();
    let text = err.to_string();
    for needle in ["BROKERD_KEY", "daemon.key", "brokerctl keygen"] {
        assert!(text.contains(needle), "{text}");
    }
    let literal = SecretRef::parse(EncryptionKey::generate().to_base64().expose());
    let err = load_key(None, Some(&literal), false).unwrap_err();
    assert!(matches!(err, KeyError::LiteralInConfig));
    let err = load_key(
        None,
        Some(&SecretRef::Env("BROKERD_TEST_UNSET_KEY_VAR".into())),
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("BROKERD_TEST_UNSET_KEY_VAR"));
}

#[test]
fn aead_binds_aad_and_survives_bad_nonces() {
    let key = EncryptionKey::generate();
    let (nonce, ciphertext) = key.seal(b"plain", b"aad-1").unwrap();
    assert_eq!(nonce.len(), NONCE_LEN);
    assert_eq!(key.open(&nonce, &ciphertext, b"aad-1").unwrap(), b"plain");
    assert!(key.open(&nonce, &ciphertext, b"aad-2").is_none());
    assert!(key.open(&nonce[..8], &ciphertext, b"aad-1").is_none());
    assert!(
        EncryptionKey::generate()
            .open(&nonce, &ciphertext, b"aad-1")
            .is_none()
    );
    // Fresh nonce per write.
    assert_ne!(key.seal(b"plain", b"aad-1").unwrap().0, nonce);
}
