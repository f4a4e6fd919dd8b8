//! The kv_server example refuses what a web page could make the user's browser send it:
//! a request whose `Host` names another site (DNS rebinding: the page's own name
//! re-resolved to 127.0.0.1, so the browser takes the service for the page's origin) and
//! one that carries another site's `Origin` (a cross-site request). Each is answered 403
//! before any handler runs and changes nothing. Requests by address or `localhost`, and
//! without an `Origin` (curl, wrk, these tests' own client), are served as before.

#[path = "kv_server/client.rs"]
mod client;

use client::{request_with, Response, Server};

/// A request to `server` with exactly these header lines.
fn send(
    server: &Server,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    request_with(server.addr, method, target, headers, body)
        .unwrap_or_else(|e| panic!("{method} {target} {headers:?}: {e}"))
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The log's `entries_written` counter: every PUT or DELETE that reached the log.
fn entries_written(server: &Server) -> f64 {
    let r = server
        .request("GET", "/metrics", b"")
        .expect("GET /metrics");
    assert_eq!(r.status, 200, "{}", text(&r));
    text(&r)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{} ", actix_wal::metrics::ENTRIES_WRITTEN)))
        .and_then(|v| v.trim().parse().ok())
        .expect("entries_written in /metrics")
}

/// PUTs `before` under `x` by address; checks that `x` still reads `before` and that
/// no write but that one reached the log.
fn key_is_unchanged(server: &Server) {
    let r = server.request("GET", "/kv/x", b"").expect("GET /kv/x");
    assert_eq!((r.status, text(&r).as_str()), (200, "before"));
    assert_eq!(
        entries_written(server),
        1.0,
        "a refused request was written"
    );
}

/// PUT, GET and DELETE of `/kv/x` with `headers` are each answered 403, and none shows
/// the value.
fn refused(server: &Server, target: &str, headers: &[(&str, &str)]) {
    for (method, body) in [("PUT", &b"evil"[..]), ("GET", b""), ("DELETE", b"")] {
        let r = send(server, method, target, headers, body);
        assert_eq!(
            r.status,
            403,
            "{method} {target} with {headers:?} was not refused: {}",
            text(&r)
        );
        assert!(!text(&r).contains("before"), "the refusal shows the value");
    }
}

/// A server on a fresh log whose key `x` holds `before`, written with its own `Host`
/// (the directory is kept for as long as the server runs).
fn server_with_key() -> (tempfile::TempDir, Server) {
    let d = tempfile::tempdir().unwrap();
    let server = Server::start(d.path());
    let own = server.addr.to_string();
    let r = send(&server, "PUT", "/kv/x", &[("Host", &own)], b"before");
    assert_eq!(r.status, 200, "{}", text(&r));
    (d, server)
}

#[test]
fn a_rebinding_host_is_refused_and_changes_nothing() {
    let (_d, server) = server_with_key();
    let port = server.addr.port();
    let own = server.addr.to_string();

    let hosts = [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
        format!("localhost.attacker.example:{port}"),
        format!("127.0.0.1.attacker.example:{port}"),
        format!("localhost.:{port}"),
    ];
    for host in &hosts {
        refused(&server, "/kv/x", &[("Host", host)]);
        // What a rebinding page's script may add (no preflight: it is same-origin to
        // the browser); the Host is what counts, not what a client says it forwarded.
        refused(
            &server,
            "/kv/x",
            &[("Host", host), ("X-Forwarded-Host", "localhost")],
        );
        refused(
            &server,
            "/kv/x",
            &[("Host", host), ("Forwarded", "host=localhost")],
        );
        for path in ["/metrics", "/health"] {
            let r = send(&server, "GET", path, &[("Host", host)], b"");
            assert_eq!(r.status, 403, "GET {path} with Host {host}: {}", text(&r));
        }
    }
    // Two Hosts, one good: ambiguous. actix-http answers 400 itself.
    for method in ["PUT", "GET", "DELETE"] {
        let two = [("Host", own.as_str()), ("Host", "attacker.example")];
        let r = send(&server, method, "/kv/x", &two, b"evil");
        assert!(
            matches!(r.status, 400 | 403),
            "{method}, two Hosts: {}",
            r.status
        );
    }
    // An absolute target names the host the request is for: it must pass too.
    refused(&server, "http://attacker.example/kv/x", &[("Host", &own)]);
    key_is_unchanged(&server);
}

#[test]
fn a_foreign_origin_is_refused_and_changes_nothing() {
    let (_d, server) = server_with_key();
    let port = server.addr.port();
    let own = server.addr.to_string();
    let origins = [
        "http://attacker.example".to_owned(),
        "https://attacker.example".to_owned(),
        format!("http://attacker.example:{port}"),
        // Another local port is another origin: any page served there.
        "http://127.0.0.1:1".to_owned(),
        format!("https://{own}"),
        "null".to_owned(),
    ];
    for origin in &origins {
        refused(&server, "/kv/x", &[("Host", &own), ("Origin", origin)]);
    }
    key_is_unchanged(&server);
}

#[test]
fn loopback_hosts_and_requests_without_an_origin_are_served() {
    let d = tempfile::tempdir().unwrap();
    let server = Server::start(d.path());
    let port = server.addr.port();
    let hosts = [
        server.addr.to_string(),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    for (i, host) in hosts.iter().enumerate() {
        let key = format!("/kv/k{i}");
        let value = format!("value {i}");
        let h = [("Host", host.as_str())];
        let r = send(&server, "PUT", &key, &h, value.as_bytes());
        assert_eq!(r.status, 200, "PUT with Host {host}: {}", text(&r));
        let r = send(&server, "GET", &key, &h, b"");
        assert_eq!((r.status, text(&r)), (200, value), "GET with Host {host}");
        let r = send(&server, "DELETE", &key, &h, b"");
        assert_eq!(r.status, 200, "DELETE with Host {host}: {}", text(&r));
        assert_eq!(send(&server, "GET", &key, &h, b"").status, 404);
    }
    // The service's own origin (a page it served, had it any) is no other site.
    let own = server.addr.to_string();
    let origin = format!("http://{own}");
    let r = send(
        &server,
        "PUT",
        "/kv/same",
        &[("Host", &own), ("Origin", &origin)],
        b"v",
    );
    assert_eq!(r.status, 200, "PUT from its own origin: {}", text(&r));
    let r = send(&server, "GET", "/kv/same", &[("Host", "localhost")], b"");
    assert_eq!((r.status, text(&r).as_str()), (200, "v"));
}
