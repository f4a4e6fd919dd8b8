//! The node's HTTP server, built so that no connection is held for a head that does not
//! come. actix-http bounds the wait for a connection's *first* head only
//! (`client_request_timeout`), and any byte read clears its keep-alive timer: a client
//! could send one request, then one byte of a second head, and hold the connection for
//! as long as it liked (a probe filled `--max-connections` on each follower that way, and
//! every PUT got 504). A body its handler left unread (a refusal at the head) is drained
//! with no timer either.
//!
//! So each connection's stream is [`Watched`]: the next head must be whole within
//! [`HEAD_TIMEOUT`] of its first byte read while no request is in progress, and within
//! the keep-alive and [`HEAD_TIMEOUT`] of the last answer, or the read fails and
//! actix-http closes the connection. A head is whole when the service is called with it;
//! a request is over when its answer is made. The rest of a body left unread is read as
//! the next head, so it is cut off too. Bodies themselves are bounded by `intake`
//! (`--body-timeout-ms`). And a write that waits [`WRITE_STALL`] with no progress (a
//! client that reads none of its answers: after it half-closes its side, actix-http reads
//! no more, so no head deadline would fire) fails, and the connection is closed. Nor does
//! the stream read more than [`READ_AHEAD_BYTES`] past the requests taken: actix-http
//! decodes every whole request it has read at once.

use actix_http::HttpService;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt as _};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::App;
use std::cell::Cell;
use std::future::Future as _;
use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// How long a head may take from its first byte to its last: actix-web's wait for a
/// connection's first head (`client_request_timeout`), for every head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// actix-web's keep-alive (an idle connection is closed after it) and its wait for a
/// closed connection's last bytes to go out, as `HttpServer` sets them.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How far the stream reads past the requests actix-http has handed to the service: it
/// decodes every whole request in its read buffer (up to 128 KiB) at once, about 4.8 KB
/// each, so 165 KB of pipelined `GET /health` took 19 to 24 MB per connection. Past this,
/// the stream waits for a request to be taken; a head longer than this never completes
/// and its deadline closes the connection.
pub const READ_AHEAD_BYTES: u64 = 16 * 1024;
/// What a chunked body may take on the wire, for the read-ahead bound: a client's value
/// (at most 64 KiB; RPCs refuse chunked bodies) and room for its chunks' framing.
const CHUNKED_BODY_BYTES: u64 = 128 * 1024;
/// How long a write to a client may wait with no progress (the client reads nothing)
/// before the connection is closed: as long as a body may take to arrive
/// (`--body-timeout-ms` by default).
pub const WRITE_STALL: Duration = Duration::from_secs(10);
/// How long requests in progress may take to finish once a stop signal arrives, s.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// What a connection's requests tell its stream: heads taken and answers made.
#[derive(Default)]
struct Requests {
    heads: Cell<u64>,
    answers: Cell<u64>,
    /// When the last answer was made.
    answered_at: Cell<Option<Instant>>,
    /// Bytes of the requests taken: their heads as sent (request line and header lines,
    /// counted from what was parsed) and their declared bodies.
    taken_bytes: Cell<u64>,
    /// The stream's read, waiting for requests to be taken (see [`READ_AHEAD_BYTES`]).
    read_waker: Cell<Option<std::task::Waker>>,
}

impl Requests {
    /// Whether no request is in progress: a byte read now is the next head's.
    fn between(&self) -> bool {
        self.heads.get() == self.answers.get()
    }

    /// A request was taken, or answered: the stream may read again.
    fn wake_read(&self) {
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
    }
}

/// The bytes a request takes on the wire, from what was parsed: its request line, its
/// header lines and its declared body (`Content-Length`; a chunked one, which only a
/// client's value may be, [`CHUNKED_BODY_BYTES`]). Exact for a head written as
/// `Name: value` (as every HTTP client writes it); a head written with more blanks
/// counts less, which only makes the read-ahead bound tighter.
fn request_bytes(req: &ServiceRequest) -> u64 {
    // "METHOD URI HTTP/1.1\r\n", each "name: value\r\n", then "\r\n".
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let chunked = req
        .headers()
        .contains_key(actix_web::http::header::TRANSFER_ENCODING);
    let body = match (declared, chunked) {
        (Some(n), _) => n,
        (None, true) => CHUNKED_BODY_BYTES,
        (None, false) => 0,
    };
    // A declared length may be any u64 (the route refuses it later): the sum saturates.
    ((line + headers + 2) as u64).saturating_add(body)
}

/// A connection's stream that fails a read once a head has taken [`HEAD_TIMEOUT`].
pub struct Watched {
    io: TcpStream,
    requests: Rc<Requests>,
    /// Heads taken and answers made when the stream last looked.
    heads_seen: u64,
    answers_seen: u64,
    /// Bytes read from the client so far.
    read_bytes: u64,
    /// The deadline of the head being read, if one is.
    head_deadline: Option<Pin<Box<Sleep>>>,
    /// When a write that made no progress must have made some, if one is waiting.
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl Watched {
    fn new(io: TcpStream) -> Self {
        Watched {
            io,
            requests: Rc::default(),
            heads_seen: 0,
            answers_seen: 0,
            read_bytes: 0,
            head_deadline: None,
            write_deadline: None,
        }
    }

    /// Sets the deadline of the head to come.
    fn arm(&mut self, cx: &mut Context<'_>, at: Instant) {
        let mut deadline = Box::pin(tokio::time::sleep_until(at));
        // Registers the waker: a read that then waits for ever is woken to fail.
        let _ = deadline.as_mut().poll(cx);
        self.head_deadline = Some(deadline);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let (heads, answers) = (this.requests.heads.get(), this.requests.answers.get());
        if heads != this.heads_seen {
            // The head being read is whole.
            this.heads_seen = heads;
            this.head_deadline = None;
        }
        if answers != this.answers_seen {
            this.answers_seen = answers;
            if this.requests.between() {
                // An idle connection is closed after the keep-alive; one that is not
                // idle is reading the next head, or the rest of a body nobody reads.
                let answered_at = this.requests.answered_at.get();
                let at = answered_at.unwrap_or_else(Instant::now) + KEEP_ALIVE + HEAD_TIMEOUT;
                this.arm(cx, at);
            }
        }
        if let Some(deadline) = this.head_deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "a head not whole within the head timeout",
                )));
            }
        }
        // Read no further than READ_AHEAD_BYTES past the requests taken.
        let room = (this
            .requests
            .taken_bytes
            .get()
            .saturating_add(READ_AHEAD_BYTES))
        .saturating_sub(this.read_bytes);
        if room == 0 {
            this.requests.read_waker.set(Some(cx.waker().clone()));
            return Poll::Pending;
        }
        let read = if room >= buf.remaining() as u64 {
            let before = buf.filled().len();
            let read = Pin::new(&mut this.io).poll_read(cx, buf);
            (read, buf.filled().len() - before)
        } else {
            let mut part = vec![0u8; room as usize];
            let mut limited = ReadBuf::new(&mut part);
            let read = Pin::new(&mut this.io).poll_read(cx, &mut limited);
            let n = limited.filled().len();
            buf.put_slice(&part[..n]);
            (read, n)
        };
        let (read, got) = read;
        this.read_bytes = this.read_bytes.saturating_add(got as u64);
        if got > 0 && this.head_deadline.is_none() && this.requests.between() {
            this.arm(cx, Instant::now() + HEAD_TIMEOUT);
        }
        read
    }
}

impl Watched {
    /// `write`'s outcome, with a deadline on a write that waits: a client that reads
    /// none of its answers (having half-closed its side, or pipelined requests it never
    /// reads the answers of) fails the write after [`WRITE_STALL`] with no progress, and
    /// actix-http closes the connection. (After a half-close actix-http reads no more,
    /// so the head deadline alone never fired.)
    fn poll_progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let done = write(Pin::new(&mut self.io), cx);
        if done.is_ready() {
            self.write_deadline = None;
            return done;
        }
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "answers not read by the client within the write timeout",
            )));
        }
        Poll::Pending
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_progress(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_progress(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_progress(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_progress(cx, |io, cx| io.poll_shutdown(cx))
    }
}

/// Counts a request's head when the service is called with it, and its answer when the
/// service has made it (actix-web middleware around [`serve`]'s `App`).
async fn count_requests<B: MessageBody>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let requests = req.conn_data::<Rc<Requests>>().cloned();
    if let Some(r) = &requests {
        r.heads.set(r.heads.get() + 1);
        r.taken_bytes
            .set(r.taken_bytes.get().saturating_add(request_bytes(&req)));
        r.wake_read();
    }
    let answer = next.call(req).await;
    if let Some(r) = &requests {
        r.answers.set(r.answers.get() + 1);
        r.answered_at.set(Some(Instant::now()));
        r.wake_read();
    }
    answer
}

/// Serves `app` on `listener` with `workers` threads and at most `max_connections`
/// connections at once (shared out among them), each connection [`Watched`]: what
/// `HttpServer` would do, with a deadline on every head. Stopped by SIGINT or SIGTERM
/// as `HttpServer` is (and by SIGHUP: `shared/hangup.rs`), after at most
/// [`SHUTDOWN_TIMEOUT_SECS`] for requests in progress.
pub fn serve<F, T, B>(
    listener: TcpListener,
    workers: usize,
    max_connections: usize,
    app: F,
) -> io::Result<Server>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let workers = workers.max(1);
    Ok(Server::build()
        .workers(workers)
        .max_concurrent_connections((max_connections / workers).max(1))
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen("raft_kv", listener, move || {
            let app = app.clone();
            let http = HttpService::<Watched, _, _>::build()
                .keep_alive(KEEP_ALIVE)
                .client_request_timeout(HEAD_TIMEOUT)
                .client_disconnect_timeout(DISCONNECT_TIMEOUT)
                .on_connect_ext(|io: &Watched, data| {
                    data.insert(io.requests.clone());
                })
                // The app reads no connection info: the default `AppConfig` stands.
                .h1(map_config(
                    app()
                        .wrap(from_fn(count_requests))
                        .into_factory()
                        .map_err(|e| e.error_response()),
                    |_| AppConfig::default(),
                ));
            fn_service(|io: TcpStream| async move {
                let peer = io.peer_addr().ok();
                io.set_nodelay(true)?;
                Ok::<_, io::Error>((Watched::new(io), peer))
            })
            .map_err(actix_http::error::DispatchError::Io)
            .and_then(http)
        })?
        .run())
}
