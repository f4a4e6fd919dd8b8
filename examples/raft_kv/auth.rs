//! Authenticated cluster RPCs: the cluster's shared secret (`--cluster-secret-file`) and
//! the HMAC-SHA256 that every `/raft/*` request and every reply to one carries, checked
//! before a byte of the body is decoded. No types of the example here: tests/raft_auth.rs
//! includes this file to sign its forged requests exactly as a node would.
//!
//! A request's MAC covers a domain string, the node it is addressed to, its path, its
//! send time (Unix ms, `x-raft-time`) and its body, each length-prefixed; it travels in
//! `x-raft-mac` as hex. A reply's MAC covers another domain string, the request's MAC,
//! the reply's body and its HTTP status, so a reply answers that request only, as sent. A request whose time is more
//! than [`MAX_CLOCK_SKEW_MS`] from the receiver's clock is refused. docs/replication.md
//! ("Security") says what this stops and what it does not.
#![allow(dead_code)]

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;

/// HMAC-SHA256, as RustCrypto spells it.
type HmacSha256 = Hmac<Sha256>;

/// Fewest bytes a secret may have: 256 bits, the hash's own width.
pub const MIN_SECRET_BYTES: usize = 32;
/// Most bytes a secret file may hold (a key, not a document).
pub const MAX_SECRET_BYTES: usize = 4_096;
/// The header with the request's send time, Unix ms.
pub const TIME_HEADER: &str = "x-raft-time";
/// The header with the MAC of a request or a reply, hex.
pub const MAC_HEADER: &str = "x-raft-mac";
/// The header with the MAC of a request's head (`x-raft-head-mac`, hex): the node it is
/// addressed to, its path, send time, identity header, `Content-Length`, `x-raft-mac`
/// and `x-raft-nonce`, checked before a byte of the body is read (`intake`).
pub const HEAD_MAC_HEADER: &str = "x-raft-head-mac";
/// The header with a request's nonce (`x-raft-nonce`, decimal), which its head MAC
/// covers: two requests alike to the byte (two heartbeats in one millisecond) still have
/// two heads, and a copy of either is still a copy (`replays`).
pub const NONCE_HEADER: &str = "x-raft-nonce";
/// Furthest a request's send time may be from the receiver's clock, ms: the window in
/// which a captured request can be replayed (docs/replication.md).
pub const MAX_CLOCK_SKEW_MS: u64 = 30_000;
/// What a request's MAC covers first: names the protocol and its version.
const REQUEST_DOMAIN: &[u8] = b"raft_kv rpc request v1";
/// What a request head's MAC covers first.
const HEAD_DOMAIN: &[u8] = b"raft_kv rpc head v1";
/// What a reply's MAC covers first.
const REPLY_DOMAIN: &[u8] = b"raft_kv rpc reply v2";

/// Why a request or reply was refused. The text is what the 401 body says.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A header is missing.
    #[error("no {0} header")]
    Missing(&'static str),
    /// A header is not what it must be (a decimal time, 64 hex digits).
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// The MAC is not that of this message under the cluster's secret.
    #[error("bad MAC: not signed with this cluster's secret, or not this message")]
    BadMac,
    /// The send time is outside the window around the receiver's clock.
    #[error("sent at {sent_ms} ms, now is {now_ms} ms: more than {MAX_CLOCK_SKEW_MS} ms apart")]
    OutOfWindow {
        /// The request's `x-raft-time`.
        sent_ms: u64,
        /// The receiver's clock.
        now_ms: u64,
    },
}

/// The cluster's shared secret. Cheap to clone; never printed.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// How to make a secret file, for the errors that refuse one.
const HOW_TO_MAKE_ONE: &str = "make one with: (umask 077; head -c 32 /dev/urandom | \
od -An -tx1 | tr -d ' \\n' > FILE) and give every node the same file";

impl Secret {
    /// The secret in `path`: its bytes less trailing whitespace (a final newline). Refused
    /// if the file is missing, not a regular file, readable or writable by group or others
    /// (as ssh refuses a private key), shorter than [`MIN_SECRET_BYTES`] or longer than
    /// [`MAX_SECRET_BYTES`].
    pub fn load(path: &Path) -> Result<Secret, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cluster secret {shown}: {e}; {HOW_TO_MAKE_ONE}"))?;
        if !meta.is_file() {
            return Err(format!("cluster secret {shown} is not a regular file"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "cluster secret {shown} has mode {mode:03o}: group or others may read \
                     or change it (chmod 600 {shown})"
                ));
            }
        }
        if meta.len() > MAX_SECRET_BYTES as u64 {
            return Err(format!(
                "cluster secret {shown} holds {} bytes, at most {MAX_SECRET_BYTES}",
                meta.len()
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("read cluster secret {shown}: {e}"))?;
        Secret::from_bytes(&bytes).map_err(|e| format!("cluster secret {shown}: {e}"))
    }

    /// The secret `bytes` less trailing whitespace, if it is long enough and not too long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Secret, String> {
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let key = &bytes[..end];
        if key.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "{} bytes, at least {MIN_SECRET_BYTES} needed; {HOW_TO_MAKE_ONE}",
                key.len()
            ));
        }
        if key.len() > MAX_SECRET_BYTES {
            return Err(format!("{} bytes, at most {MAX_SECRET_BYTES}", key.len()));
        }
        Ok(Secret(key.into()))
    }

    fn hmac(&self) -> HmacSha256 {
        // HMAC takes a key of any length: this cannot fail.
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }

    /// The MAC of a request to node `to` at `path`, sent at `time_ms`, with `body` and
    /// the identity header `identity` (empty: none; covered after the rest, so a request
    /// without one has the MAC it had before the header existed).
    fn request_mac(
        &self,
        to: u64,
        path: &str,
        time_ms: u64,
        identity: &str,
        body: &[u8],
    ) -> HmacSha256 {
        let mut mac = self.hmac();
        for part in [REQUEST_DOMAIN, path.as_bytes(), body] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.update(&to.to_le_bytes());
        mac.update(&time_ms.to_le_bytes());
        if !identity.is_empty() {
            mac.update(&(identity.len() as u64).to_le_bytes());
            mac.update(identity.as_bytes());
        }
        mac
    }

    /// The `x-raft-mac` of a request to node `to` at `path`, sent at `time_ms`, with no
    /// identity header (a membership request; a forged RPC in the tests).
    pub fn sign_request(&self, to: u64, path: &str, time_ms: u64, body: &[u8]) -> String {
        self.sign_request_from(to, path, time_ms, "", body)
    }

    /// The `x-raft-mac` of an RPC that carries the identity header `identity` (`identity`).
    pub fn sign_request_from(
        &self,
        to: u64,
        path: &str,
        time_ms: u64,
        identity: &str,
        body: &[u8],
    ) -> String {
        hex(&self
            .request_mac(to, path, time_ms, identity, body)
            .finalize()
            .into_bytes())
    }

    /// Checks a request that node `to` received at `path` with headers `time` and `mac`
    /// (either may be missing) when its clock read `now_ms`: the MAC first, in constant
    /// time, then the window. Returns the request's MAC, which its reply's MAC covers.
    pub fn verify_request(
        &self,
        to: u64,
        path: &str,
        time: Option<&str>,
        mac: Option<&str>,
        body: &[u8],
        now_ms: u64,
    ) -> Result<String, AuthError> {
        self.verify_request_from(to, path, (time, mac, None), body, now_ms)
    }

    /// [`Secret::verify_request`] of a request whose headers `time`, `mac` and
    /// `identity` are as given (any may be missing).
    pub fn verify_request_from(
        &self,
        to: u64,
        path: &str,
        (time, mac, identity): (Option<&str>, Option<&str>, Option<&str>),
        body: &[u8],
        now_ms: u64,
    ) -> Result<String, AuthError> {
        let identity = identity.unwrap_or("");
        check_signed((MAC_HEADER, mac), time, now_ms, |sent_ms| {
            self.request_mac(to, path, sent_ms, identity, body)
        })
        .map(str::to_owned)
    }

    /// The MAC of the head of a request to node `to` at `path`, sent at `time_ms`, with
    /// the identity header `identity` (empty: none), a body of `body_bytes` bytes and the
    /// request MAC `request_mac` (its `x-raft-mac`, which covers the body: no two requests
    /// but copies share a head MAC).
    fn head_mac(&self, (to, path): (u64, &str), head: Head<'_>) -> HmacSha256 {
        let mut mac = self.hmac();
        for part in [
            HEAD_DOMAIN,
            path.as_bytes(),
            head.identity.as_bytes(),
            head.request_mac.as_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        for n in [to, head.time_ms, head.body_bytes, head.nonce] {
            mac.update(&n.to_le_bytes());
        }
        mac
    }

    /// The `x-raft-head-mac` of a request to node `to` at `path` with the head `head`.
    pub fn sign_head(&self, to: u64, path: &str, head: Head<'_>) -> String {
        hex(&self.head_mac((to, path), head).finalize().into_bytes())
    }

    /// Checks the head of a request that node `to` received at `path`, with headers
    /// `time`, `head_mac`, `identity` and `mac` (any may be missing) and a
    /// `Content-Length` of `body_bytes`, when its clock read `now_ms`: the MAC first, in
    /// constant time, then the window. Returns its send time. Only the head:
    /// [`Secret::verify_request_from`] checks the whole request once its body is in.
    pub fn verify_head(
        &self,
        (to, path): (u64, &str),
        headers: HeadHeaders<'_>,
        body_bytes: u64,
        now_ms: u64,
    ) -> Result<u64, AuthError> {
        let request_mac = headers.mac.ok_or(AuthError::Missing(MAC_HEADER))?;
        let nonce = headers.nonce.ok_or(AuthError::Missing(NONCE_HEADER))?;
        let nonce: u64 = nonce
            .parse()
            .map_err(|_| AuthError::Malformed(NONCE_HEADER))?;
        let identity = headers.identity.unwrap_or("");
        let mut sent = 0;
        check_signed(
            (HEAD_MAC_HEADER, headers.head_mac),
            headers.time,
            now_ms,
            |time_ms| {
                sent = time_ms;
                let head = Head {
                    time_ms,
                    identity,
                    body_bytes,
                    request_mac,
                    nonce,
                };
                self.head_mac((to, path), head)
            },
        )?;
        Ok(sent)
    }

    /// The MAC of the reply with HTTP status `status` and `body` to the request whose MAC
    /// was `request_mac`.
    fn reply_mac(&self, request_mac: &str, status: u16, body: &[u8]) -> HmacSha256 {
        let mut mac = self.hmac();
        for part in [REPLY_DOMAIN, request_mac.as_bytes(), body] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.update(&status.to_le_bytes());
        mac
    }

    /// The `x-raft-mac` of the reply with HTTP status `status` and `body` to the request
    /// whose MAC was `request_mac`: a relay can change neither.
    pub fn sign_reply(&self, request_mac: &str, status: u16, body: &[u8]) -> String {
        hex(&self
            .reply_mac(request_mac, status, body)
            .finalize()
            .into_bytes())
    }

    /// Checks the reply with HTTP status `status`, `body` and MAC header `mac` to the
    /// request whose MAC was `request_mac`, in constant time.
    pub fn verify_reply(
        &self,
        request_mac: &str,
        (status, mac): (u16, Option<&str>),
        body: &[u8],
    ) -> Result<(), AuthError> {
        let mac = mac.ok_or(AuthError::Missing(MAC_HEADER))?;
        let tag = unhex(mac).ok_or(AuthError::Malformed(MAC_HEADER))?;
        self.reply_mac(request_mac, status, body)
            .verify_slice(&tag)
            .map_err(|_| AuthError::BadMac)
    }
}

/// What a request's head MAC covers besides the node and the path.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// Its send time, Unix ms (`x-raft-time`).
    pub time_ms: u64,
    /// Its identity header (empty: none).
    pub identity: &'a str,
    /// Its `Content-Length`.
    pub body_bytes: u64,
    /// Its `x-raft-mac`.
    pub request_mac: &'a str,
    /// Its `x-raft-nonce` ([`next_nonce`]).
    pub nonce: u64,
}

/// The headers of a request as received, for [`Secret::verify_head`] (any may be missing).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadHeaders<'a> {
    /// `x-raft-time`.
    pub time: Option<&'a str>,
    /// `x-raft-head-mac`.
    pub head_mac: Option<&'a str>,
    /// The identity header.
    pub identity: Option<&'a str>,
    /// `x-raft-mac`.
    pub mac: Option<&'a str>,
    /// `x-raft-nonce`.
    pub nonce: Option<&'a str>,
}

/// Checks the MAC in the header `(name, value)` against the one `expected` makes for the
/// send time in `time` (in constant time), then that time against `now_ms`; the MAC.
fn check_signed<'a>(
    (name, mac): (&'static str, Option<&'a str>),
    time: Option<&str>,
    now_ms: u64,
    expected: impl FnOnce(u64) -> HmacSha256,
) -> Result<&'a str, AuthError> {
    let mac = mac.ok_or(AuthError::Missing(name))?;
    let time = time.ok_or(AuthError::Missing(TIME_HEADER))?;
    let sent_ms: u64 = time
        .parse()
        .map_err(|_| AuthError::Malformed(TIME_HEADER))?;
    let tag = unhex(mac).ok_or(AuthError::Malformed(name))?;
    expected(sent_ms)
        .verify_slice(&tag)
        .map_err(|_| AuthError::BadMac)?;
    if sent_ms.abs_diff(now_ms) > MAX_CLOCK_SKEW_MS {
        return Err(AuthError::OutOfWindow { sent_ms, now_ms });
    }
    Ok(mac)
}

/// A nonce for the next request of this process: a counter from a random start, so no
/// two requests of a process share one (and processes almost never do).
pub fn next_nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    NEXT.get_or_init(|| {
        // Without randomness, the clock: a restarted process starts elsewhere still.
        let start = getrandom::u64().unwrap_or_else(|_| now_ms() << 20);
        AtomicU64::new(start)
    })
    .fetch_add(1, Ordering::Relaxed)
}

/// Unix time, ms (0 if the clock is before 1970: every request is then out of window).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string of 64 digits (a SHA-256 MAC), or None.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
