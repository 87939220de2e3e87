//! A raw HTTP/1.1 client connection for the proxy tests
//! (tests/proxy_relay.rs, tests/proxy_fastpath.rs): write bytes as they
//! are, read whole responses (Content-Length or chunked) with a deadline.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any one answer may take on a busy machine.
pub(crate) const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

/// One response read off a raw connection.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

/// Reads responses off one client connection, keeping what was read past
/// the current one.
pub(crate) struct Client {
    pub(crate) tcp: TcpStream,
    pub(crate) buf: Vec<u8>,
}

impl Client {
    /// A raw connection to a server's `http://ADDR` URL.
    pub(crate) async fn connect(url: &str) -> Client {
        let addr = url.trim_start_matches("http://").to_owned();
        Client {
            tcp: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    pub(crate) async fn fill(&mut self) {
        let mut more = [0u8; 16 * 1024];
        let n = tokio::time::timeout(ANSWER_DEADLINE, self.tcp.read(&mut more))
            .await
            .expect("an answer within the deadline")
            .unwrap();
        assert!(
            n > 0,
            "the connection closed mid-answer: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&more[..n]);
    }

    /// The next response's status and head, taken off the buffer.
    pub(crate) async fn head(&mut self) -> (u16, String) {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        self.buf.drain(..end);
        (head[9..12].parse().unwrap(), head)
    }

    /// The next whole response (Content-Length or chunked body).
    pub(crate) async fn answer(&mut self) -> Answer {
        let (status, head) = self.head().await;
        let lower = head.to_ascii_lowercase();
        let body = if lower.contains("transfer-encoding: chunked") {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    self.fill().await;
                };
                let size =
                    usize::from_str_radix(std::str::from_utf8(&self.buf[..line_end]).unwrap().trim(), 16).unwrap();
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill().await;
                }
                body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
                if size == 0 {
                    break body;
                }
            }
        } else {
            let length = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0usize);
            while self.buf.len() < length {
                self.fill().await;
            }
            self.buf.drain(..length).collect()
        };
        Answer { status, head, body }
    }
}

/// A plain `GET PATH` request.
pub(crate) fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}
