//! The limits every hostlab HTTP server enforces against hostile or broken
//! clients (docs/security.md lists each one, its flag, its default and what
//! the client sees). Most are hyper's own settings; what hyper leaves to the
//! service (the URI length, transfer codings other than `chunked`, the
//! connection limit's answer) is checked here.

use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use hostlab_workloads::error::ApiError;
use http::header::{RETRY_AFTER, TRANSFER_ENCODING};
use http::{HeaderValue, Request, Response, StatusCode};

/// Longest request target (path and query) in bytes; longer ones get 414
/// (nginx's `large_client_header_buffers` default is 8 KiB too).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest request head (request line plus headers) in bytes; larger ones
/// get 431 from hyper, which then closes the connection.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Connections the limit answers with 503 at the same time; beyond this the
/// server closes them without an answer (they are a flood, not clients).
const MAX_REFUSING: usize = 256;
/// Longest the server spends answering one connection over the limit.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection and request limits of one server process, with their units in
/// the field names' docs. Defaults: [`Limits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Client connections open at once; each further connection gets one
    /// 503 `overloaded` answer and is closed.
    pub max_connections: usize,
    /// Longest a client may take to send a request head, counted from when
    /// the server starts waiting for it; so also how long an idle
    /// keep-alive connection stays open. The connection is then closed.
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a whole request body (408).
    pub body_read_timeout: Duration,
    /// proxy: longest wait for the app's response headers (504), and for each
    /// later part of its body. Split front: longest wait for the actor
    /// service's reply (503 `backend_unavailable`). `None`: the model's default.
    pub upstream_timeout: Option<Duration>,
}

/// The proxy's default [`Limits::upstream_timeout`].
pub const DEFAULT_PROXY_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: default_max_connections(),
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            upstream_timeout: None,
        }
    }
}

/// 10,000, or fewer when the open-files limit (RLIMIT_NOFILE) could not hold
/// them: a proxied connection needs two descriptors (client and upstream),
/// and 64 are kept for the process itself (listeners, pipes, logs).
pub fn default_max_connections() -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    let fit = soft.saturating_sub(64) / 2;
    (fit as usize).clamp(16, 10_000)
}

impl Limits {
    /// hyper's HTTP/1.1 server settings for these limits.
    pub fn http1_builder(&self) -> hyper::server::conn::http1::Builder {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_header_size(MAX_HEAD_BYTES);
        builder
    }
}

/// Checks hyper leaves to the service, made before anything else sees the
/// request: a URI over [`MAX_URI_BYTES`] (414) and a transfer coding other
/// than a single `chunked` (400). hyper itself already answers 400 for
/// conflicting `Content-Length`s, a non-`chunked` final coding,
/// `Transfer-Encoding` in HTTP/1.0, obs-fold and malformed heads; and when
/// both `Content-Length` and `Transfer-Encoding: chunked` come, it drops the
/// length, reads the chunked body and closes the connection after the
/// response (RFC 9112 section 6.3), so nothing can be smuggled behind it.
pub fn check_request<B>(req: &Request<B>) -> Option<Response<Body>> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(refusal(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request target is {target} bytes, over the {MAX_URI_BYTES}-byte limit; send a shorter one"),
        ));
    }
    let mut codings = req.headers().get_all(TRANSFER_ENCODING).iter();
    if let Some(first) = codings.next()
        && (codings.next().is_some() || !first.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"))
    {
        return Some(refusal(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the only transfer coding accepted is one `Transfer-Encoding: chunked`",
        ));
    }
    None
}

/// An error in the workload API's format that also closes the connection:
/// after a refused request the server does not trust its framing any more.
pub fn refusal(status: StatusCode, code: &'static str, message: &str) -> Response<Body> {
    ApiError::new(status, code, message).closing().into_response()
}

/// The answer to a connection over [`Limits::max_connections`].
pub fn too_many_connections(max: usize) -> Response<Body> {
    let mut response = refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        &format!(
            "the server has {max} connections open, its --max-connections limit; retry after the Retry-After delay"
        ),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Admission of connections: a permit per open connection up to
/// `max_connections`, and a small bounded budget for answering the excess.
#[derive(Clone)]
pub struct ConnectionGate {
    open: std::sync::Arc<tokio::sync::Semaphore>,
    refusing: std::sync::Arc<tokio::sync::Semaphore>,
    limits: Limits,
}

impl ConnectionGate {
    pub fn new(limits: Limits) -> ConnectionGate {
        ConnectionGate {
            open: std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections)),
            refusing: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_REFUSING)),
            limits,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A permit to serve `tcp`, or `None` after handing it to a task that
    /// answers 503 `overloaded` and closes it (or, past the refusal budget,
    /// after closing it at once).
    pub fn admit(&self, tcp: tokio::net::TcpStream) -> Option<(tokio::net::TcpStream, ConnectionPermit)> {
        if let Ok(permit) = self.open.clone().try_acquire_owned() {
            return Some((tcp, ConnectionPermit(permit)));
        }
        let Ok(refusing) = self.refusing.clone().try_acquire_owned() else {
            return None;
        };
        let max = self.limits.max_connections;
        let mut builder = self.limits.http1_builder();
        builder.header_read_timeout(REFUSAL_TIMEOUT).keep_alive(false);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_req| async move {
                Ok::<_, std::convert::Infallible>(too_many_connections(max))
            });
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(REFUSAL_TIMEOUT, conn).await;
            drop(refusing);
        });
        None
    }
}

/// Marks a connection on which a request head carried both
/// `Content-Length` and `Transfer-Encoding`, or `Content-Length` twice.
///
/// hyper accepts both shapes without telling the service: it drops the
/// length in favour of `chunked` (and closes the connection after the
/// response), and folds equal repeated lengths into one (RFC 9112 allows
/// both). Such a request is how request smuggling starts, so hostlab refuses
/// it outright, as actix-web and nginx do: [`FramingSniffer`] watches the
/// bytes hyper reads and sets this flag, and every later request on the
/// connection gets 400 and the connection is closed.
#[derive(Debug, Default, Clone)]
pub struct AmbiguousFraming(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl AmbiguousFraming {
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The answer to a request on a connection marked [`AmbiguousFraming`].
pub fn ambiguous_framing() -> Response<Body> {
    refusal(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "a request on this connection had Content-Length with Transfer-Encoding, or Content-Length twice; send exactly one of them, once",
    )
}

/// A connection's byte stream as hyper reads it, with each block of header
/// lines (ended by an empty line) checked for the [`AmbiguousFraming`]
/// shapes. It looks only at the first bytes of each line, so it costs about
/// one comparison per byte read; body bytes that happen to look like header
/// lines can only cause a refusal, never let a request through.
pub struct FramingSniffer<T> {
    inner: T,
    flag: AmbiguousFraming,
    /// The current line's first bytes, lower-cased.
    line: [u8; 18],
    line_len: usize,
    /// Bytes of the current line before its `\n`.
    line_bytes: usize,
    lengths: u8,
    transfer_encoding: bool,
}

impl<T> FramingSniffer<T> {
    pub fn new(inner: T) -> (FramingSniffer<T>, AmbiguousFraming) {
        let flag = AmbiguousFraming::default();
        let sniffer = FramingSniffer {
            inner,
            flag: flag.clone(),
            line: [0; 18],
            line_len: 0,
            line_bytes: 0,
            lengths: 0,
            transfer_encoding: false,
        };
        (sniffer, flag)
    }

    /// Scan what was read: find each line end with `memchr` (SIMD) and
    /// keep only the first bytes of each line, instead of a branch per byte.
    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (segment, line_ended, rest) = match memchr::memchr(b'\n', bytes) {
                Some(i) => (&bytes[..i], true, &bytes[i + 1..]),
                None => (bytes, false, &[][..]),
            };
            let take = (self.line.len() - self.line_len).min(segment.len());
            let start = self.line_len;
            for (kept, &b) in self.line[start..start + take].iter_mut().zip(segment) {
                *kept = b.to_ascii_lowercase();
            }
            self.line_len += take;
            self.line_bytes += segment.len();
            if line_ended {
                self.end_line();
            }
            bytes = rest;
        }
    }

    /// A line ended: a header line counts, an empty line ends the head.
    fn end_line(&mut self) {
        let line = &self.line[..self.line_len];
        if self.line_bytes == 0 || line == b"\r" {
            if self.lengths > 1 || (self.lengths == 1 && self.transfer_encoding) {
                self.flag.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            self.lengths = 0;
            self.transfer_encoding = false;
        } else if line.starts_with(b"content-length") {
            self.lengths = self.lengths.saturating_add(1);
        } else if line.starts_with(b"transfer-encoding") {
            self.transfer_encoding = true;
        }
        self.line_len = 0;
        self.line_bytes = 0;
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FramingSniffer<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_ready() {
            let this = &mut *self;
            this.scan(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FramingSniffer<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Held by a connection while it is open.
#[derive(Debug)]
pub struct ConnectionPermit(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, te: &[&str]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for v in te {
            b = b.header(TRANSFER_ENCODING, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn long_uri_is_414() {
        let long = format!("/{}", "a".repeat(MAX_URI_BYTES));
        assert_eq!(check_request(&request(&long, &[])).unwrap().status(), 414);
        assert!(check_request(&request(&long[..MAX_URI_BYTES], &[])).is_none());
    }

    #[test]
    fn only_one_chunked_coding_passes() {
        assert!(check_request(&request("/", &["chunked"])).is_none());
        assert!(check_request(&request("/", &["Chunked "])).is_none());
        for bad in [&["gzip, chunked"][..], &["chunked", "chunked"], &["identity"]] {
            let r = check_request(&request("/", bad)).unwrap();
            assert_eq!(r.status(), 400, "{bad:?}");
            assert_eq!(r.headers()[http::header::CONNECTION], "close");
        }
    }

    fn sniff(chunks: &[&[u8]]) -> bool {
        let (mut sniffer, flag) = FramingSniffer::new(());
        for c in chunks {
            sniffer.scan(c);
        }
        flag.is_set()
    }

    #[test]
    fn the_sniffer_flags_ambiguous_heads_only() {
        let clean = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(!sniff(&[clean]));
        assert!(sniff(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        ]));
        assert!(sniff(&[
            b"POST / HTTP/1.1\r\ncontent-LENGTH: 5\r\nContent-Length: 5\r\n\r\n"
        ]));
        // Split anywhere across reads, even inside a header name.
        assert!(sniff(&[
            b"POST / HTTP/1.1\r\nContent-Len",
            b"gth: 5\r\nTransfer-Enc",
            b"oding: chunked\r",
            b"\n\r\n"
        ]));
    }

    /// The sniffer as first written, one byte at a time: the reference the
    /// `memchr` scan must agree with.
    fn sniff_bytewise(input: &[u8]) -> bool {
        let (mut line, mut line_len, mut line_bytes, mut lengths, mut te, mut flag) =
            ([0u8; 18], 0, 0, 0u8, false, false);
        for &b in input {
            if b != b'\n' {
                if line_len < line.len() {
                    line[line_len] = b.to_ascii_lowercase();
                    line_len += 1;
                }
                line_bytes += 1;
                continue;
            }
            let l = &line[..line_len];
            if line_bytes == 0 || l == b"\r" {
                flag |= lengths > 1 || (lengths == 1 && te);
                lengths = 0;
                te = false;
            } else if l.starts_with(b"content-length") {
                lengths = lengths.saturating_add(1);
            } else if l.starts_with(b"transfer-encoding") {
                te = true;
            }
            line_len = 0;
            line_bytes = 0;
        }
        flag
    }

    #[test]
    fn the_scan_agrees_with_a_byte_at_a_time_scan_at_every_split() {
        let inputs: [&[u8]; 6] = [
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\ncontent-LENGTH: 5\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\nContent-Length: 5\n\nTransfer-Encoding: x\nContent-Length: 1\n\n",
            b"GET / HTTP/1.1\r\nX-Content-Length-Long-Header-Name: 1\r\ncontent-length:1\r\n\r\n",
            b"\n\n\r\n\rContent-Length\r\nContent-Length\n\r\n",
        ];
        for input in inputs {
            let expected = sniff_bytewise(input);
            assert_eq!(sniff(&[input]), expected, "{}", String::from_utf8_lossy(input));
            for i in 0..=input.len() {
                for j in i..=input.len() {
                    let parts = [&input[..i], &input[i..j], &input[j..]];
                    assert_eq!(sniff(&parts), expected, "split at {i} and {j}");
                }
            }
        }
    }

    #[test]
    fn default_connection_limit_fits_the_descriptor_limit() {
        let n = default_max_connections();
        assert!((16..=10_000).contains(&n));
    }
}
