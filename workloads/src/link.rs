//! The remoting link alone (claim C8): a sink actor behind a ractor_cluster
//! node server, and the two measurements a sender makes over one
//! connection to it, with many messages in flight:
//!
//! - one-way: casts in windows of `in_flight`; a `Count` call closes each
//!   window (messages on one session arrive in order, so its reply means
//!   every earlier message was delivered). Rate = delivered / elapsed.
//! - round trips: `in_flight` concurrent `Echo` calls, each re-issued as
//!   soon as it is answered. Rate = answered / elapsed.
//!
//! The sink runs in its own process (`hostlab link-sink`), pinned like the
//! models' servers; the sender in the driver, on the generator's CPUs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{NodeServerMessage, RactorClusterMessage};

use crate::remote::{accept_into, client_connect, start_node};

/// Process group the sink joins.
pub const LINK_GROUP: &str = "hostlab.link";

/// How long one call may wait for its reply.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What crosses the link.
#[derive(RactorClusterMessage)]
pub enum LinkMsg {
    /// One-way: counted by the sink.
    Message(u64),
    /// Round trip: answered with the same number.
    #[rpc]
    Echo(u64, RpcReplyPort<u64>),
    /// One-way messages received so far.
    #[rpc]
    Count(RpcReplyPort<u64>),
}

/// Counts one-way messages and answers calls.
pub struct Sink;

impl Actor for Sink {
    type Msg = LinkMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        ractor::pg::join(LINK_GROUP.to_owned(), vec![myself.get_cell()]);
        Ok(0)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LinkMsg::Message(_) => *count += 1,
            LinkMsg::Echo(x, reply) => {
                let _ = reply.send(x);
            }
            LinkMsg::Count(reply) => {
                let _ = reply.send(*count);
            }
        }
        Ok(())
    }
}

/// Sink side: a node server with the sink, accepting sessions on
/// `listener` until the process ends.
pub async fn serve_sink(listener: tokio::net::TcpListener) -> Result<(), String> {
    let node = start_node(&format!("hostlab-link-sink-{}", std::process::id()))
        .await
        .map_err(|e| format!("cannot start the node server: {e}"))?;
    let (_sink, _) = Actor::spawn(None, Sink, ())
        .await
        .map_err(|e| format!("cannot start the sink: {e}"))?;
    accept_into(listener, node).await;
    Ok(())
}

/// Sender side: one session to the sink at `addr`, and the sink's ref.
pub struct LinkSender {
    pub sink: ActorRef<LinkMsg>,
    _node: ActorRef<NodeServerMessage>,
}

impl LinkSender {
    pub async fn connect(addr: SocketAddr) -> Result<LinkSender, String> {
        let node = start_node(&format!("hostlab-link-sender-{}", std::process::id()))
            .await
            .map_err(|e| format!("cannot start the node server: {e}"))?;
        // The front's own connect: the same socket options and read buffer.
        tokio::time::timeout(Duration::from_secs(5), client_connect(&node, addr))
            .await
            .map_err(|_| format!("connecting to the link sink at {addr} timed out"))?
            .map_err(|e| format!("cannot connect to the link sink at {addr}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let remote = ractor::pg::get_members(&LINK_GROUP.to_owned())
                .into_iter()
                .find(|cell| !cell.get_id().is_local());
            if let Some(cell) = remote {
                return Ok(LinkSender {
                    sink: ActorRef::from(cell),
                    _node: node,
                });
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the sink at {addr} did not appear in its process group within 5 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn count(&self) -> Result<u64, String> {
        match self.sink.call(LinkMsg::Count, Some(CALL_TIMEOUT)).await {
            Ok(CallResult::Success(n)) => Ok(n),
            other => Err(format!("the sink did not answer a count: {other:?}")),
        }
    }

    /// One-way messages for about `duration`, at most `in_flight`
    /// undelivered at a time: (messages delivered, elapsed).
    pub async fn one_way(&self, duration: Duration, in_flight: u64) -> Result<(u64, Duration), String> {
        let before = self.count().await?;
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed() < duration {
            for _ in 0..in_flight.max(1) {
                self.sink
                    .cast(LinkMsg::Message(sent))
                    .map_err(|e| format!("cast failed: {e}"))?;
                sent += 1;
            }
            self.count().await?;
        }
        let delivered = self.count().await?.saturating_sub(before);
        let elapsed = started.elapsed();
        if delivered != sent {
            return Err(format!("{sent} messages sent, {delivered} delivered"));
        }
        Ok((delivered, elapsed))
    }

    /// Round trips for about `duration` with `in_flight` calls outstanding:
    /// (round trips answered, elapsed).
    pub async fn round_trips(&self, duration: Duration, in_flight: usize) -> Result<(u64, Duration), String> {
        let answered = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut callers = tokio::task::JoinSet::new();
        for i in 0..in_flight.max(1) {
            let sink = self.sink.clone();
            let answered = answered.clone();
            callers.spawn(async move {
                let mut x = i as u64;
                while started.elapsed() < duration {
                    match sink.call(|r| LinkMsg::Echo(x, r), Some(CALL_TIMEOUT)).await {
                        Ok(CallResult::Success(y)) if y == x => answered.fetch_add(1, Ordering::Relaxed),
                        other => return Err(format!("a round trip failed: {other:?}")),
                    };
                    x += 1;
                }
                Ok(())
            });
        }
        while let Some(joined) = callers.join_next().await {
            joined.map_err(|e| format!("a caller panicked: {e}"))??;
        }
        Ok((answered.load(Ordering::Relaxed), started.elapsed()))
    }

    /// Exactly `n` one-way messages in windows of `in_flight`: the time
    /// until the last one was delivered (for benches).
    pub async fn one_way_n(&self, n: u64, in_flight: u64) -> Result<Duration, String> {
        let before = self.count().await?;
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < n {
            let window = in_flight.max(1).min(n - sent);
            for _ in 0..window {
                self.sink
                    .cast(LinkMsg::Message(sent))
                    .map_err(|e| format!("cast failed: {e}"))?;
                sent += 1;
            }
            self.count().await?;
        }
        let elapsed = started.elapsed();
        let delivered = self.count().await?.saturating_sub(before);
        if delivered != n {
            return Err(format!("{n} messages sent, {delivered} delivered"));
        }
        Ok(elapsed)
    }

    /// Exactly `n` round trips with up to `in_flight` calls outstanding:
    /// the time until the last was answered (for benches).
    pub async fn round_trips_n(&self, n: u64, in_flight: usize) -> Result<Duration, String> {
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..in_flight.max(1) {
            let sink = self.sink.clone();
            let next = next.clone();
            callers.spawn(async move {
                loop {
                    let x = next.fetch_add(1, Ordering::Relaxed);
                    if x >= n {
                        return Ok(());
                    }
                    match sink.call(|r| LinkMsg::Echo(x, r), Some(CALL_TIMEOUT)).await {
                        Ok(CallResult::Success(y)) if y == x => {}
                        other => return Err(format!("a round trip failed: {other:?}")),
                    }
                }
            });
        }
        while let Some(joined) = callers.join_next().await {
            joined.map_err(|e| format!("a caller panicked: {e}"))??;
        }
        Ok(started.elapsed())
    }
}
