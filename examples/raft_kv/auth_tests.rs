//! Tests of `auth`: requests, heads and replies verify only as signed; secret files.

use super::*;

fn secret(fill: u8) -> Secret {
    Secret::from_bytes(&[fill; 32]).expect("32 bytes")
}

#[test]
fn a_request_verifies_only_as_signed() {
    let (s, now) = (secret(7), 1_000_000);
    let mac = s.sign_request(2, "/raft/append", now, b"body");
    let ok = s.verify_request(2, "/raft/append", Some("1000000"), Some(&mac), b"body", now);
    assert_eq!(ok, Ok(mac.clone()));
    let check = |to, path, time: &str, body: &[u8]| {
        s.verify_request(to, path, Some(time), Some(&mac), body, now)
    };
    assert_eq!(
        check(3, "/raft/append", "1000000", b"body"),
        Err(AuthError::BadMac)
    );
    assert_eq!(
        check(2, "/raft/vote", "1000000", b"body"),
        Err(AuthError::BadMac)
    );
    assert_eq!(
        check(2, "/raft/append", "1000001", b"body"),
        Err(AuthError::BadMac)
    );
    assert_eq!(
        check(2, "/raft/append", "1000000", b"bodY"),
        Err(AuthError::BadMac)
    );
    let other = secret(8).sign_request(2, "/raft/append", now, b"body");
    let forged = s.verify_request(
        2,
        "/raft/append",
        Some("1000000"),
        Some(&other),
        b"body",
        now,
    );
    assert_eq!(forged, Err(AuthError::BadMac));
    let bare = s.verify_request(2, "/raft/append", Some("1000000"), None, b"body", now);
    assert_eq!(bare, Err(AuthError::Missing(MAC_HEADER)));
    let short = s.verify_request(2, "/raft/append", Some("1000000"), Some("abc"), b"", now);
    assert_eq!(short, Err(AuthError::Malformed(MAC_HEADER)));
}

#[test]
fn the_identity_header_is_covered() {
    let (s, now) = (secret(7), 1_000_000);
    let mac = s.sign_request_from(2, "/raft/append", now, "1 a b", b"body");
    let check = |identity| {
        let headers = (Some("1000000"), Some(mac.as_str()), identity);
        s.verify_request_from(2, "/raft/append", headers, b"body", now)
    };
    assert_eq!(check(Some("1 a b")), Ok(mac.clone()));
    for other in [None, Some(""), Some("1 a c"), Some("3 a b")] {
        assert_eq!(check(other), Err(AuthError::BadMac), "{other:?}");
    }
    // Without the header, the MAC is the one `sign_request` makes.
    let plain = s.sign_request(2, "/raft/append", now, b"body");
    assert_eq!(
        plain,
        s.sign_request_from(2, "/raft/append", now, "", b"body")
    );
}

#[test]
fn a_head_verifies_only_as_signed() {
    let (s, now) = (secret(7), 1_000_000);
    let head = |identity, body_bytes, request_mac| Head {
        time_ms: now,
        identity,
        body_bytes,
        request_mac,
        nonce: 42,
    };
    let mac = s.sign_head(2, "/raft/append", head("1 a b", 300, "m1"));
    let check = |to, path, identity, bytes, request_mac, mac: &str| {
        let headers = HeadHeaders {
            time: Some("1000000"),
            head_mac: Some(mac),
            identity,
            mac: Some(request_mac),
            nonce: Some("42"),
        };
        s.verify_head((to, path), headers, bytes, now)
    };
    let ok = check(2, "/raft/append", Some("1 a b"), 300, "m1", &mac);
    assert_eq!(ok, Ok(now));
    for (to, path, identity, bytes, request_mac) in [
        (3, "/raft/append", Some("1 a b"), 300, "m1"),
        (2, "/raft/vote", Some("1 a b"), 300, "m1"),
        (2, "/raft/append", None, 300, "m1"),
        (2, "/raft/append", Some("1 a c"), 300, "m1"),
        (2, "/raft/append", Some("1 a b"), 301, "m1"),
        // Another request's MAC: another body.
        (2, "/raft/append", Some("1 a b"), 300, "m2"),
    ] {
        let got = check(to, path, identity, bytes, request_mac, &mac);
        assert_eq!(
            got,
            Err(AuthError::BadMac),
            "{to} {path} {identity:?} {bytes} {request_mac}"
        );
    }
    // Another nonce: another head.
    let again = s.sign_head(
        2,
        "/raft/append",
        Head {
            nonce: 43,
            ..head("1 a b", 300, "m1")
        },
    );
    assert_ne!(again, mac);
    let other = secret(8).sign_head(2, "/raft/append", head("1 a b", 300, "m1"));
    let forged = check(2, "/raft/append", Some("1 a b"), 300, "m1", &other);
    assert_eq!(forged, Err(AuthError::BadMac));
    // The body's MAC is not the head's.
    let body_mac = s.sign_request_from(2, "/raft/append", now, "1 a b", b"");
    let swapped = check(2, "/raft/append", Some("1 a b"), 0, "m1", &body_mac);
    assert_eq!(swapped, Err(AuthError::BadMac));
    let bare = HeadHeaders {
        time: Some("1"),
        mac: Some("m1"),
        nonce: Some("42"),
        ..HeadHeaders::default()
    };
    let none = s.verify_head((2, "/raft/append"), bare, 0, now);
    assert_eq!(none, Err(AuthError::Missing(HEAD_MAC_HEADER)));
    let late = s.verify_head(
        (2, "/raft/append"),
        HeadHeaders {
            time: Some("1000000"),
            head_mac: Some(&mac),
            identity: Some("1 a b"),
            mac: Some("m1"),
            nonce: Some("42"),
        },
        300,
        now + MAX_CLOCK_SKEW_MS + 1,
    );
    assert!(
        matches!(late, Err(AuthError::OutOfWindow { .. })),
        "{late:?}"
    );
}

#[test]
fn a_request_out_of_the_window_is_refused() {
    let s = secret(7);
    let sent = 1_000_000;
    let mac = s.sign_request(1, "/raft/vote", sent, b"");
    let at = |now| s.verify_request(1, "/raft/vote", Some("1000000"), Some(&mac), b"", now);
    assert!(at(sent + MAX_CLOCK_SKEW_MS).is_ok());
    assert!(at(sent - MAX_CLOCK_SKEW_MS).is_ok());
    let late = at(sent + MAX_CLOCK_SKEW_MS + 1);
    assert!(
        matches!(late, Err(AuthError::OutOfWindow { .. })),
        "{late:?}"
    );
    let early = at(sent - MAX_CLOCK_SKEW_MS - 1);
    assert!(
        matches!(early, Err(AuthError::OutOfWindow { .. })),
        "{early:?}"
    );
}

#[test]
fn a_reply_verifies_only_for_its_request_and_status() {
    let s = secret(7);
    let mac = s.sign_reply("req-a", 404, b"reply");
    assert_eq!(s.verify_reply("req-a", (404, Some(&mac)), b"reply"), Ok(()));
    assert_eq!(
        s.verify_reply("req-b", (404, Some(&mac)), b"reply"),
        Err(AuthError::BadMac)
    );
    assert_eq!(
        s.verify_reply("req-a", (404, Some(&mac)), b"other"),
        Err(AuthError::BadMac)
    );
    // A relay that says 200 for the node's 404.
    assert_eq!(
        s.verify_reply("req-a", (200, Some(&mac)), b"reply"),
        Err(AuthError::BadMac)
    );
    let none = s.verify_reply("req-a", (404, None), b"reply");
    assert_eq!(none, Err(AuthError::Missing(MAC_HEADER)));
}

#[test]
fn secret_files_that_are_weak_or_open_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, body: &[u8], mode: u32| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(&path, perms).expect("chmod");
        }
        path
    };
    let good = write("good", &[b'a'; 65], 0o600);
    assert!(Secret::load(&good).is_ok());
    assert!(Secret::load(&dir.path().join("missing")).is_err());
    assert!(Secret::load(dir.path()).is_err(), "a directory");
    let empty = write("empty", b"", 0o600);
    assert!(Secret::load(&empty).is_err());
    let short = write("short", b"0123456789abcdef0123456789abcde\n\n", 0o600);
    assert!(Secret::load(&short).is_err(), "31 bytes and newlines");
    let long = write("long", &[b'a'; MAX_SECRET_BYTES + 1], 0o600);
    assert!(Secret::load(&long).is_err());
    #[cfg(unix)]
    for mode in [0o640, 0o604, 0o620, 0o644] {
        let open = write(&format!("open{mode:o}"), &[b'a'; 64], mode);
        let err = Secret::load(&open).expect_err("readable by others");
        assert!(err.contains("chmod 600"), "{err}");
    }
    // The trailing newline is not part of the key: a file with and one without
    // sign alike.
    let bare = write("bare", &[b'k'; 40], 0o600);
    let newline = write("newline", &[&[b'k'; 40][..], b"\n"].concat(), 0o600);
    let (a, b) = (
        Secret::load(&bare).unwrap(),
        Secret::load(&newline).unwrap(),
    );
    assert_eq!(
        a.sign_request(1, "/p", 5, b"x"),
        b.sign_request(1, "/p", 5, b"x")
    );
}
