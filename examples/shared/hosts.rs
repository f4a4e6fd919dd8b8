//! Which requests a browser may have been tricked into sending, refused before any
//! handler runs (both example services wrap their `App` in [`guard`]).
//!
//! Serving only loopback or a private network does not keep out a web page the user's
//! browser visits. By DNS rebinding, the page's own name (`attacker.example`) is resolved
//! again to 127.0.0.1, the browser takes `http://attacker.example:8080` for the page's
//! own origin, and the page's script may PUT, DELETE and read every key: the requests
//! arrive with `Host: attacker.example:8080`. And a page on any site may send a
//! cross-site request, which arrives with that site's `Origin`. So (Jupyter's and
//! Ollama's fix for the same hole) a request is answered 403 if:
//!
//! - its `Host` (and the authority of an absolute target, if it has one) is not an IP
//!   literal (v4 or v6, any address: an address cannot be rebound, and a page at an
//!   address is another origin), not `localhost`, and not a name the operator allowed
//!   (`--allowed-host`), compared without case, the port set aside; or there are two
//!   `Host`s (actix-http answers that 400 first). A request with no `Host` has nothing
//!   to check: no browser sends one (actix-http answers an HTTP/1.1 one 400 itself).
//! - it carries an `Origin` other than the service's own, `http://` and its `Host`
//!   (neither service serves pages, so no other site's script has any business here);
//!   `Origin: null` (a sandboxed or local page) included.
//!
//! The `Host` read is the header as it came, never `ConnectionInfo::host`, which prefers
//! `Forwarded` and `X-Forwarded-Host`: headers a rebinding page's script may set on its
//! "same-origin" requests without a preflight. 403, not 421 (Misdirected Request): 421
//! tells a client to retry on another connection, and there is nothing to retry; and one
//! status for both refusals. A refused body is left unread, as at the services' other
//! refusals at the head. What this does not stop: any local process (or any host
//! that reaches a private address) can still send whatever `Host` it likes; it is a
//! client no browser page controls, and the services' contract for it is unchanged.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Most bytes of a name given to `--allowed-host` (DNS's own limit).
const MAX_NAME_BYTES: usize = 253;

/// The names a `Host` may give besides an IP literal and `localhost`
/// (`--allowed-host`), lower case.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    /// Shared by every worker's `App`: read only, cloned for each request's guard.
    names: Arc<[String]>,
}

impl AllowedHosts {
    /// `localhost`, IP literals, and `names` (each from [`parse_name`]).
    pub fn new(names: Vec<String>) -> Self {
        AllowedHosts {
            names: names.into(),
        }
    }

    /// Whether a `Host` value (`name`, `name:port`, `v4:port`, `[v6]:port`) is served.
    pub fn allows(&self, host: &str) -> bool {
        match split_port(host) {
            Some(name) if is_ip_literal(name) => true,
            Some(name) => {
                name.eq_ignore_ascii_case("localhost")
                    || self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
            }
            None => false,
        }
    }

    /// Why `req` is refused (the answer's body), if it is.
    fn refusal(&self, req: &ServiceRequest) -> Option<&'static str> {
        let mut hosts = req.headers().get_all(header::HOST);
        let host = match (hosts.next(), hosts.next()) {
            (None, _) => None,
            (Some(h), None) => match h.to_str() {
                Ok(h) if self.allows(h) => Some(h),
                _ => return Some("Host not allowed\n"),
            },
            (Some(_), Some(_)) => return Some("Host not allowed\n"),
        };
        if let Some(authority) = req.uri().authority() {
            if !self.allows(authority.as_str()) {
                return Some("Host not allowed\n");
            }
        }
        let mut origins = req.headers().get_all(header::ORIGIN);
        match (origins.next(), origins.next(), host) {
            (None, _, _) => None,
            (Some(origin), None, Some(host)) => {
                let own = origin
                    .to_str()
                    .ok()
                    .and_then(|o| o.strip_prefix("http://"))
                    .is_some_and(|o| o.eq_ignore_ascii_case(host));
                (!own).then_some("Origin not allowed\n")
            }
            _ => Some("Origin not allowed\n"),
        }
    }
}

/// `--allowed-host NAME`: a DNS name (letters, digits, `-` and `.`), without a port,
/// that clients may give as the `Host`; lower-cased.
pub fn parse_name(s: &str) -> Result<String, String> {
    let name = s.to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid {
        return Err(format!(
            "`{s}` is not a host name (letters, digits, `-` and `.`, no port)"
        ));
    }
    Ok(name)
}

/// The host of a `Host` value without its port (`[...]` kept around an IPv6 literal);
/// None if the value is malformed (a port that is not 1 to 5 digits, a bare IPv6
/// address, anything but a port after `]`).
fn split_port(host: &str) -> Option<&str> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')? + 1;
        let port = match &host[end..] {
            "" => None,
            rest => Some(rest.strip_prefix(':')?),
        };
        (&host[..end], port)
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    // `u16::from_str` takes a leading `+`: digits only.
    let port_ok = port.is_none_or(|p| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
    });
    (port_ok && !name.is_empty()).then_some(name)
}

/// An IPv4 literal in dotted decimal, or an IPv6 literal in brackets.
fn is_ip_literal(name: &str) -> bool {
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
        None => name.parse::<Ipv4Addr>().is_ok(),
    }
}

/// The middleware: answers 403 to a request [`AllowedHosts`] refuses, and passes the
/// others on. `App::new().wrap(from_fn(move |req, next| guard(allowed.clone(), req,
/// next)))`: outermost but for what the server adds, so no handler reads a refused body.
pub async fn guard<B: MessageBody>(
    allowed: AllowedHosts,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match allowed.refusal(&req) {
        Some(why) => Ok(req
            .into_response(HttpResponse::Forbidden().body(why))
            .map_into_right_body()),
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    /// `ip` as a `Host` writes it.
    fn literal(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        }
    }

    #[test]
    fn addresses_localhost_and_allowed_names_pass_and_other_names_do_not() {
        let allowed = AllowedHosts::new(vec![parse_name("KV.internal").unwrap()]);
        let ips: [IpAddr; 4] = [
            Ipv4Addr::LOCALHOST.into(),
            Ipv4Addr::new(10, 1, 2, 3).into(),
            Ipv6Addr::LOCALHOST.into(),
            "fd00::7".parse::<Ipv6Addr>().unwrap().into(),
        ];
        for ip in ips {
            let l = literal(ip);
            assert!(allowed.allows(&l), "{l}");
            assert!(allowed.allows(&format!("{l}:8080")), "{l}:8080");
        }
        for ok in [
            "localhost",
            "LOCALHOST:1",
            "kv.internal",
            "Kv.Internal:21001",
        ] {
            assert!(allowed.allows(ok), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.nip.io:80",
            "evil.kv.internal",
            "kv.internal.attacker.example",
            "localhost.",
            "",
            ":80",
            "localhost:",
            "localhost:80:80",
            "localhost:x",
            "localhost:+80",
            "localhost:65536",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[localhost]",
            "[fe80::1%25eth0]:80",
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
        ] {
            assert!(!allowed.allows(bad), "{bad}");
        }
    }

    /// A request's target and headers, and why it must be refused (None: served).
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Option<&'static str>,
    );

    /// Why a request to `target` with these headers is refused, if it is.
    fn refusal(target: &str, headers: &[(&str, &str)]) -> Option<&'static str> {
        let mut req = actix_web::test::TestRequest::default().uri(target);
        for header in headers {
            req = req.append_header(*header);
        }
        AllowedHosts::default().refusal(&req.to_srv_request())
    }

    #[test]
    fn the_host_and_the_origin_decide_and_forwarding_headers_do_not() {
        const HOST: Option<&str> = Some("Host not allowed\n");
        const ORIGIN: Option<&str> = Some("Origin not allowed\n");
        let cases: [Case; 14] = [
            ("/kv/x", &[("host", "127.0.0.1:8080")], None),
            ("/kv/x", &[], None),
            ("/kv/x", &[("host", "attacker.example:8080")], HOST),
            (
                "/kv/x",
                &[
                    ("host", "attacker.example:8080"),
                    ("x-forwarded-host", "localhost"),
                    ("forwarded", "host=localhost"),
                ],
                HOST,
            ),
            (
                "/kv/x",
                &[("host", "localhost"), ("host", "attacker.example")],
                HOST,
            ),
            (
                "http://attacker.example/kv/x",
                &[("host", "localhost")],
                HOST,
            ),
            ("http://127.0.0.1:8080/kv/x", &[("host", "localhost")], None),
            (
                "/kv/x",
                &[
                    ("host", "localhost:8080"),
                    ("origin", "http://LOCALHOST:8080"),
                ],
                None,
            ),
            (
                "/kv/x",
                &[
                    ("host", "localhost:8080"),
                    ("origin", "http://attacker.example"),
                ],
                ORIGIN,
            ),
            (
                "/kv/x",
                &[
                    ("host", "localhost:8080"),
                    ("origin", "https://localhost:8080"),
                ],
                ORIGIN,
            ),
            (
                "/kv/x",
                &[
                    ("host", "localhost:8080"),
                    ("origin", "http://localhost:3000"),
                ],
                ORIGIN,
            ),
            (
                "/kv/x",
                &[("host", "localhost"), ("origin", "null")],
                ORIGIN,
            ),
            ("/kv/x", &[("origin", "http://localhost")], ORIGIN),
            (
                "/kv/x",
                &[
                    ("host", "localhost"),
                    ("origin", "http://localhost"),
                    ("origin", "http://attacker.example"),
                ],
                ORIGIN,
            ),
        ];
        for (target, headers, refused) in cases {
            assert_eq!(refusal(target, headers), refused, "{target} {headers:?}");
        }
    }

    #[test]
    fn an_allowed_name_is_a_bare_dns_name() {
        assert_eq!(parse_name("Kv-1.Example").unwrap(), "kv-1.example");
        for bad in ["", "kv.internal:80", "kv internal", "*.internal", "[::1]"] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
        assert!(parse_name(&"a".repeat(MAX_NAME_BYTES + 1)).is_err());
    }
}
