//! The head of an HTTP/1.1 request with exactly the header lines a test gives: shared by
//! the `raft_kv` test client (`common/raft.rs`) and the `kv_server` one
//! (`kv_server/client.rs`), which send heads no HTTP client library would (a forged
//! `Host`, two of them, an absolute target).

/// `METHOD TARGET HTTP/1.1`, each of `headers` as given, then `Content-Length:
/// body_len`, `Connection: close` and the empty line.
pub fn request_head(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {body_len}\r\nConnection: close\r\n\r\n"
    ));
    head
}
