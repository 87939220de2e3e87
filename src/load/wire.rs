//! The lean HTTP/1.1 client path of a load run: the fixed request encoded
//! once, written as one buffer, and the response parsed with `httparse` in a
//! reused read buffer, its body skipped rather than stored. Every load run
//! sends the same request again and again, so the general-purpose client
//! (hyper: request builder, header map clone, body channel, a connection
//! task per socket) cost about a third of the generator's CPU per request.
//!
//! Framing follows RFC 9112 section 6: no body for HEAD and 1xx/204/304,
//! else `Transfer-Encoding: chunked`, else `Content-Length`, else the body
//! runs to the end of the connection.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::Method;
use http::header::{CONTENT_LENGTH, HeaderMap};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::stats::Outcome;

/// Largest response head accepted (status line plus headers).
const MAX_HEAD: usize = 64 * 1024;
/// Initial size of a connection's read buffer.
const READ_BUFFER: usize = 8 * 1024;

/// The request every slot sends, encoded once for the whole run.
#[derive(Debug, Clone)]
pub(super) struct EncodedRequest {
    pub bytes: Bytes,
    /// A HEAD request: the response has no body whatever its headers say.
    pub head_only: bool,
}

impl EncodedRequest {
    /// `METHOD path HTTP/1.1`, the headers (Host among them), a
    /// `content-length` when there is a body (or the method usually has
    /// one) and none was given, then the body.
    pub(super) fn new(method: &Method, path_and_query: &str, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut out = Vec::with_capacity(64 + path_and_query.len() + 32 * headers.len() + body.len());
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(path_and_query.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let body_expected = !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        if body_expected && !headers.contains_key(CONTENT_LENGTH) {
            out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        EncodedRequest {
            bytes: Bytes::from(out),
            head_only: *method == Method::HEAD,
        }
    }
}

/// A complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Response {
    pub status: u16,
    /// The connection may carry the next request.
    pub keep_alive: bool,
}

/// Outcome of a failed socket operation.
pub(crate) fn classify_io(e: &io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Outcome::Refused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Outcome::Reset,
        io::ErrorKind::TimedOut => Outcome::Timeout,
        _ => Outcome::Io,
    }
}

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// One keep-alive connection and its read buffer (`buf[start..end]` holds
/// bytes received but not yet consumed).
#[derive(Debug)]
pub(super) struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Responses read on this connection so far.
    pub served: u64,
}

impl Connection {
    pub(super) async fn connect(addr: SocketAddr) -> Result<Connection, Outcome> {
        let stream = TcpStream::connect(addr).await.map_err(|e| classify_io(&e))?;
        // Requests are small and latency matters: no Nagle delay.
        stream.set_nodelay(true).map_err(|e| classify_io(&e))?;
        Ok(Connection {
            stream,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            served: 0,
        })
    }

    /// Whether the server has closed this idle connection (or sent
    /// something unasked, such as a 408 before closing): it must not carry
    /// the next request. Costs no system call while the reactor has seen
    /// nothing arrive, since tokio then knows the socket is not readable.
    pub(super) fn stale(&mut self) -> bool {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.start != self.end {
            return true; // bytes after the last response
        }
        match self.stream.try_read(&mut self.buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Ok(_) | Err(_) => true,
        }
    }

    /// Sends `request` and reads its response to the end.
    pub(super) async fn exchange(&mut self, request: &EncodedRequest) -> Result<Response, Outcome> {
        self.stream
            .write_all(&request.bytes)
            .await
            .map_err(|e| classify_io(&e))?;
        let (status, keep_alive, framing) = self.read_head(request.head_only).await?;
        match framing {
            Framing::None => {}
            Framing::Length(n) => self.skip(n).await?,
            Framing::Chunked => self.skip_chunked().await?,
            Framing::UntilClose => self.skip_to_close().await?,
        }
        self.served += 1;
        Ok(Response {
            status,
            keep_alive: keep_alive && framing != Framing::UntilClose,
        })
    }

    /// Reads more bytes after `end`, compacting or growing the buffer
    /// first when it is full. End of stream is an error: the response was
    /// not complete.
    async fn fill(&mut self) -> Result<(), Outcome> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else if self.buf.len() < MAX_HEAD {
                self.buf.resize(self.buf.len() * 2, 0);
            } else {
                return Err(Outcome::Io);
            }
        }
        match self.stream.read(&mut self.buf[self.end..]).await {
            Ok(0) => Err(Outcome::Reset),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(classify_io(&e)),
        }
    }

    /// Parses the status line and headers (skipping interim 1xx
    /// responses) and consumes them from the buffer.
    async fn read_head(&mut self, head_only: bool) -> Result<(u16, bool, Framing), Outcome> {
        loop {
            if self.end > self.start {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = response.code.unwrap_or(0);
                        let version = response.version.unwrap_or(1);
                        let head = head_facts(response.headers, version);
                        self.start += n;
                        if (100..200).contains(&status) && status != 101 {
                            continue; // interim response: the real one follows
                        }
                        let framing = head.framing(status, head_only).map_err(|()| Outcome::Io)?;
                        return Ok((status, head.keep_alive, framing));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(Outcome::Io),
                }
            }
            self.fill().await?;
        }
    }

    /// Consumes `n` body bytes without keeping them.
    async fn skip(&mut self, mut n: u64) -> Result<(), Outcome> {
        loop {
            let available = (self.end - self.start) as u64;
            let take = available.min(n);
            self.start += take as usize;
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Consumes a chunked body: size lines, data, CRLF, and the trailer
    /// section after the last (empty) chunk.
    async fn skip_chunked(&mut self) -> Result<(), Outcome> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        self.start += n;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => self.fill().await?,
                    Err(_) => return Err(Outcome::Io),
                }
            };
            if size == 0 {
                // Trailer lines until an empty one.
                loop {
                    match self.buf[self.start..self.end].windows(2).position(|w| w == b"\r\n") {
                        Some(0) => {
                            self.start += 2;
                            return Ok(());
                        }
                        Some(line) => self.start += line + 2,
                        None => self.fill().await?,
                    }
                }
            }
            self.skip(size + 2).await?;
        }
    }

    /// Consumes everything until the server closes the connection.
    async fn skip_to_close(&mut self) -> Result<(), Outcome> {
        loop {
            (self.start, self.end) = (0, 0);
            match self.stream.read(&mut self.buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(classify_io(&e)),
            }
        }
    }
}

/// What the headers say about the body and the connection.
#[derive(Debug, Default)]
struct HeadFacts {
    content_length: Option<Result<u64, ()>>,
    chunked: bool,
    keep_alive: bool,
}

fn head_facts(headers: &[httparse::Header<'_>], version: u8) -> HeadFacts {
    let mut facts = HeadFacts {
        // HTTP/1.1 keeps the connection unless told otherwise; 1.0 closes it.
        keep_alive: version >= 1,
        ..HeadFacts::default()
    };
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(());
            facts.content_length = match (facts.content_length, parsed) {
                (None, p) => Some(p),
                (Some(Ok(a)), Ok(b)) if a == b => Some(Ok(a)),
                _ => Some(Err(())),
            };
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked when it is the last coding applied.
            facts.chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    facts.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    facts.keep_alive = true;
                }
            }
        }
    }
    facts
}

impl HeadFacts {
    /// The body's framing, or `Err` for a malformed `Content-Length`.
    fn framing(&self, status: u16, head_only: bool) -> Result<Framing, ()> {
        if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok(Framing::None);
        }
        if self.chunked {
            return Ok(Framing::Chunked);
        }
        match self.content_length {
            Some(Ok(0)) => Ok(Framing::None),
            Some(Ok(n)) => Ok(Framing::Length(n)),
            Some(Err(())) => Err(()),
            None => Ok(Framing::UntilClose),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HOST, HeaderValue};
    use tokio::net::TcpListener;

    #[test]
    fn request_is_encoded_once_with_its_length() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:9"));
        let get = EncodedRequest::new(&Method::GET, "/ping", &headers, b"");
        assert_eq!(&get.bytes[..], b"GET /ping HTTP/1.1\r\nhost: 127.0.0.1:9\r\n\r\n");
        let post = EncodedRequest::new(&Method::POST, "/books", &headers, b"{}");
        assert_eq!(
            &post.bytes[..],
            b"POST /books HTTP/1.1\r\nhost: 127.0.0.1:9\r\ncontent-length: 2\r\n\r\n{}"
        );
        assert!(EncodedRequest::new(&Method::HEAD, "/", &headers, b"").head_only);
    }

    /// Serves `replies` (raw bytes, each written in two pieces to exercise
    /// partial reads) on one connection, one per request read.
    async fn serve(replies: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            for reply in replies {
                let _ = s.read(&mut buf).await.unwrap();
                let (a, b) = reply.split_at(reply.len() / 2);
                s.write_all(a).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                s.write_all(b).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_every_framing_and_keeps_the_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\npong",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 503 Busy\r\nconnection: close\r\ncontent-length: 2\r\n\r\nno",
        ])
        .await;
        let mut c = Connection::connect(addr).await.unwrap();
        let req = EncodedRequest::new(&Method::GET, "/", &HeaderMap::new(), b"");
        let mut got = Vec::new();
        for _ in 0..4 {
            let r = c.exchange(&req).await.unwrap();
            got.push((r.status, r.keep_alive));
        }
        assert_eq!(got, [(200, true), (404, true), (204, true), (503, false)]);
        assert_eq!(c.served, 4);
        assert_eq!(c.start, c.end, "nothing left over");
        // The server closed the connection after its last reply.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !c.stale() {
            assert!(std::time::Instant::now() < deadline, "close never noticed");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn body_until_close_and_truncated_responses() {
        let addr = serve(vec![b"HTTP/1.0 200 OK\r\n\r\nall of it"]).await;
        let mut c = Connection::connect(addr).await.unwrap();
        let req = EncodedRequest::new(&Method::GET, "/", &HeaderMap::new(), b"");
        let r = c.exchange(&req).await.unwrap();
        assert_eq!((r.status, r.keep_alive), (200, false));

        let addr = serve(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"]).await;
        let mut c = Connection::connect(addr).await.unwrap();
        assert_eq!(c.exchange(&req).await.unwrap_err(), Outcome::Reset);

        // Closed with nothing sent back.
        let addr = serve(vec![b""]).await;
        let mut c = Connection::connect(addr).await.unwrap();
        assert_eq!(c.exchange(&req).await.unwrap_err(), Outcome::Reset);

        let addr = serve(vec![b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"]).await;
        let mut c = Connection::connect(addr).await.unwrap();
        assert_eq!(c.exchange(&req).await.unwrap_err(), Outcome::Io);
    }
}
