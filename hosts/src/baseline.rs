//! `baseline`: the floor every other model is measured against. A bare
//! hyper HTTP/1.1 server answering `GET /ping` with `pong`: no router, no
//! workload, no actors, no limits, no front pipeline, no framing sniffer.
//! Whatever a model costs per request above this server is the cost of its
//! hosting path (DESIGN.md "Command line").
//!
//! Any other request gets a bare 404. On SIGTERM/SIGINT it stops accepting,
//! closes every connection once its current response is written, and exits
//! within the shutdown limit.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::lifecycle::{self, Server};
use crate::{ServeError, ServeOptions, bind_std, signals};

pub(crate) fn serve(options: &ServeOptions) -> Result<(), ServeError> {
    lifecycle::serve(options.model, || async {
        let listener = TcpListener::from_std(bind_std(options.listen)?)?;
        let addr = listener.local_addr()?;
        signals::ignore_recycle_signal(options.model.name());
        let (stop, stopping) = watch::channel(false);
        let serving = tokio::spawn(accept_loop(listener, stopping, options.policy.shutdown_limit));
        Ok(Baseline { addr, stop, serving })
    })
}

/// The one answer of the baseline: `GET /ping` is `pong` (as every model
/// answers it), anything else an empty 404.
async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = if req.method() == Method::GET && req.uri().path() == "/ping" {
        let mut response = Response::new(Full::new(Bytes::from_static(b"pong")));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        response
    } else {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    };
    Ok(response)
}

/// Accept and serve until told to stop; then wait (at most `limit`) for the
/// open connections to finish their current response and close.
async fn accept_loop(listener: TcpListener, mut stop: watch::Receiver<bool>, limit: Duration) {
    let open = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(Notify::new());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        let (open, closed, mut stop) = (open.clone(), closed.clone(), stop.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(answer));
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = async { drop(stop.wait_for(|s| *s).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("baseline connection: {e}");
            }
            open.fetch_sub(1, Ordering::Relaxed);
            closed.notify_waiters();
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(limit, async {
        while open.load(Ordering::Relaxed) > 0 {
            // Re-check at least every 50 ms: a notify can slip between the
            // load and the wait.
            let _ = tokio::time::timeout(Duration::from_millis(50), closed.notified()).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still open after the drain limit of {limit:?}; closing them");
    }
}

struct Baseline {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    serving: tokio::task::JoinHandle<()>,
}

impl Server for Baseline {
    fn addresses(&self) -> (SocketAddr, Option<SocketAddr>) {
        (self.addr, None)
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        shutdown.await;
        let _ = self.stop.send(true);
        let _ = self.serving.await;
        Ok(())
    }
}
