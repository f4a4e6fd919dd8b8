//! The kv_server example's bounds, as a process: the bytes its map holds (`--max-bytes`:
//! a PUT that would pass it is answered 507, and the memory stays bounded), and the time a
//! request body may take to arrive (a client sending a byte now and then is cut off with
//! 408 instead of holding a connection open).

#[path = "kv_server/client.rs"]
mod client;

use client::{Response, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// PUTs of 256 KiB values under new keys are refused with 507 once the map would hold
/// more than `--max-bytes`; overwriting with a smaller value and deleting still work, and
/// a delete makes room again.
#[test]
fn a_put_past_max_bytes_is_refused_with_507() {
    let d = tempfile::tempdir().unwrap();
    let server = Server::start_with(d.path(), &["--max-bytes", "1048576"]);
    let value = vec![b'v'; 256 * 1024];
    let mut statuses = Vec::new();
    for k in 0..8 {
        let r: Response = server
            .request("PUT", &format!("/kv/k{k}"), &value)
            .expect("PUT answered");
        statuses.push(r.status);
    }
    // 1 MiB holds three such values with their keys, not four.
    assert_eq!(
        statuses,
        [200, 200, 200, 507, 507, 507, 507, 507],
        "{statuses:?}"
    );
    assert_eq!(
        server.request("PUT", "/kv/k0", b"small").unwrap().status,
        200
    );
    assert_eq!(server.request("DELETE", "/kv/k1", b"").unwrap().status, 200);
    assert_eq!(server.request("PUT", "/kv/k5", &value).unwrap().status, 200);
    assert_eq!(server.request("GET", "/kv/k5", b"").unwrap().body, value);
}

/// A client that sends its body a byte at a time (every 200 ms, of a declared 1,000) is
/// answered 408 and disconnected within the default body timeout (10 s) plus a margin,
/// instead of holding the connection for as long as it likes; nothing is stored.
#[test]
fn a_slow_request_body_is_cut_off() {
    let d = tempfile::tempdir().unwrap();
    let server = Server::start(d.path());
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "PUT /kv/slow HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut writer = stream.try_clone().unwrap();
    let dripping = std::thread::spawn(move || {
        for _ in 0..1000 {
            if writer.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    // The bound: the default timeout (10 s) and a margin for a loaded machine.
    stream
        .set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let took = started.elapsed();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    assert!(
        read.is_ok(),
        "still open after {took:?}: {read:?}, {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        took < Duration::from_secs(25),
        "cut off only after {took:?}"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?} after {took:?}");
    dripping.join().unwrap();
    assert_eq!(server.request("GET", "/kv/slow", b"").unwrap().status, 404);
}
