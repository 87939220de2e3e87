//! The split model's actor remoting, on ractor_cluster (node servers, cookie
//! authentication, remote actor refs, `call` with timeouts).
//!
//! The actor service runs the workload's actors plus one [`Gateway`] actor in
//! the process group [`GATEWAY_GROUP`]. A front connects its own node server
//! to the service's, finds the gateway through the synchronised group, and
//! sends each API [`Op`] as one remote call; the gateway runs it on the local
//! actors (in a task of its own, so calls run concurrently) and replies with
//! the [`Reply`]. Only [`GatewayMsg`] crosses the wire; the bounded mailboxes
//! and their slots stay local to the service.
//!
//! The front watches node-session events: when the session drops, the remote
//! gateway ref is dropped at once (requests get 503 `backend_unavailable`),
//! and a reconnect loop with backoff brings it back (ractor_cluster does not
//! reconnect by itself).
//!
//! A sharded service is M such nodes, node I started with `--shard I/M`.
//! The front links to each (one node server, one session per node), checks
//! that the node at place K of its list serves shard K/M, and routes each
//! operation by the jump hash of its key (`hashing.rs`); list and stats go
//! to every node and are merged. A node that is down makes only its own
//! shard's operations (and the whole-store ones) answer 503. Both ends set TCP keep-alive and a user timeout on
//! the link, so a cut without a reset (a veth down, a host gone) drops the
//! session within [`LINK_DEAD_AFTER`] instead of the OS's 15 minutes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, BytesConvertable, RpcReplyPort};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage, RactorClusterMessage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::hashing::{Shard, shard_of_book, shard_of_key};
use crate::ops::{LocalActors, Op, Refusal, Reply, Stats};

/// Process group the actor service's gateway joins.
pub const GATEWAY_GROUP: &str = "hostlab.gateway";
/// The cookie both node servers must share: `HOSTLAB_COOKIE`, or this default
/// (set your own whenever front and actor service are on different machines).
pub const DEFAULT_COOKIE: &str = "hostlab-cookie";

pub fn cookie() -> String {
    std::env::var("HOSTLAB_COOKIE").unwrap_or_else(|_| DEFAULT_COOKIE.to_owned())
}

/// A value carried inside a ractor_cluster message, encoded with postcard
/// (a compact binary serde format: no field names, varint integers), which
/// costs a fraction of JSON's encoding and decoding per message. `None`
/// means the bytes did not decode: a peer's bad bytes must not panic this
/// process.
#[derive(Debug)]
pub struct Wire<T>(pub Option<T>);

impl<T: Serialize + DeserializeOwned> BytesConvertable for Wire<T> {
    fn into_bytes(self) -> Vec<u8> {
        postcard::to_allocvec(&self.0).unwrap_or_default()
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        Wire(postcard::from_bytes::<Option<T>>(&bytes).ok().flatten())
    }
}

/// The one message that crosses between front and actor service.
#[derive(RactorClusterMessage)]
pub enum GatewayMsg {
    #[rpc]
    Execute(Wire<Op>, RpcReplyPort<Wire<Reply>>),
    /// Which shard this node serves (the front checks it at link time).
    #[rpc]
    Shard(Wire<()>, RpcReplyPort<Wire<Shard>>),
}

/// Service side: runs remote operations on the local actors of one node,
/// which serves the given shard.
pub struct Gateway;

impl Actor for Gateway {
    type Msg = GatewayMsg;
    type State = (Arc<LocalActors>, Shard);
    type Arguments = (Arc<LocalActors>, Shard);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: (Arc<LocalActors>, Shard),
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(GATEWAY_GROUP.to_owned(), vec![myself.get_cell()]);
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        (local, shard): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (op, reply) = match message {
            GatewayMsg::Execute(Wire(op), reply) => (op, reply),
            GatewayMsg::Shard(_, reply) => {
                let _ = reply.send(Wire(Some(*shard)));
                return Ok(());
            }
        };
        let local = local.clone();
        // One task per call: a slow task must not hold up the next call.
        tokio::spawn(async move {
            let result = match op {
                Some(op) => local.execute(op).await,
                None => Reply::Refused(Refusal::Unreachable(
                    "the front sent a message this service cannot read".into(),
                )),
            };
            let _ = reply.send(Wire(Some(result)));
        });
        Ok(())
    }
}

/// Start a node server that only listens on loopback for its own (unused)
/// listener; connections are handed to it by [`accept_into`] or [`RemoteActors`].
pub async fn start_node(name: &str) -> Result<ActorRef<NodeServerMessage>, ractor::SpawnErr> {
    let server = NodeServer::new(0, cookie(), name.to_owned(), "127.0.0.1".to_owned(), None, None)
        .with_listen_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let (node, _) = Actor::spawn(None, server, ()).await?;
    Ok(node)
}

/// Service side: accept node connections on `listener` (any address, so the
/// front may be on another machine) and hand them to `node`.
pub async fn accept_into(listener: tokio::net::TcpListener, node: ActorRef<NodeServerMessage>) {
    loop {
        let (stream, peer_addr) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!("actor service accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tune_link(&stream);
        let opened = NodeServerMessage::ConnectionOpenedExternal {
            stream: Box::new(BufferedLink { stream, peer_addr }),
            is_server: true,
        };
        if node.cast(opened).is_err() {
            return;
        }
    }
}

/// How long a link may go without an answer from the peer (keep-alive
/// probes when idle, acknowledgements when data is waiting) before the
/// kernel drops the connection and the session with it. Without it a link
/// cut with no reset (a cable pulled, a veth set down, a host gone) leaves a
/// session that looks up until the OS gives up, after about 15 minutes.
pub const LINK_DEAD_AFTER: Duration = Duration::from_secs(4);

/// Socket options of every node link, on both ends: no Nagle delay (small
/// request/reply messages would wait for it, ractor #389), and a dead peer
/// detected within [`LINK_DEAD_AFTER`] (TCP keep-alive every second when
/// idle, `TCP_USER_TIMEOUT` when data is waiting).
fn tune_link(stream: &tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(1))
        .with_interval(Duration::from_secs(1))
        .with_retries(3);
    if let Err(e) = socket
        .set_tcp_keepalive(&keepalive)
        .and_then(|()| socket.set_keepalive(true))
        .and_then(|()| socket.set_tcp_user_timeout(Some(LINK_DEAD_AFTER)))
    {
        tracing::warn!("cannot set keep-alive on a node link ({e}); a link cut may go unnoticed for long");
    }
}

/// Size of a link's read buffer: one `read` takes in every frame waiting
/// on the socket (64 calls in flight are about 6 KB of small frames).
const LINK_READ_BUFFER: usize = 64 * 1024;

/// A node link as ractor_cluster's session sees it: the TCP stream with a
/// read buffer in front. ractor_cluster reads each frame with two unbuffered
/// reads from a raw stream (its 8-byte length, then the body), two `recvfrom`
/// calls per message; through this buffer one call takes in every frame that
/// is waiting. Framing, authentication and sessions are ractor_cluster's
/// own, unchanged: it takes the stream as an external transport.
struct BufferedLink {
    stream: tokio::net::TcpStream,
    peer_addr: SocketAddr,
}

impl ractor_cluster::ClusterBidiStream for BufferedLink {
    fn split(self: Box<Self>) -> (ractor_cluster::BoxRead, ractor_cluster::BoxWrite) {
        let (read, write) = self.stream.into_split();
        (
            Box::new(tokio::io::BufReader::with_capacity(LINK_READ_BUFFER, read)),
            Box::new(write),
        )
    }

    /// The peer's address: the node server names the session's peer with
    /// it (`NodeServerSessionInformation::peer_addr`), as for a raw stream.
    fn peer_label(&self) -> Option<String> {
        Some(self.peer_addr.to_string())
    }

    fn local_label(&self) -> Option<String> {
        self.stream.local_addr().ok().map(|a| a.to_string())
    }
}

/// Front side: open a node link to `service` (as ractor_cluster's own
/// `client_connect` does, with [`tune_link`]'s socket options and a
/// [`BufferedLink`]) and hand it to `node`. Returns the peer's address,
/// which names the session in node-session events.
pub(crate) async fn client_connect(
    node: &ActorRef<NodeServerMessage>,
    service: SocketAddr,
) -> Result<SocketAddr, String> {
    let stream = tokio::net::TcpStream::connect(service)
        .await
        .map_err(|e| e.to_string())?;
    tune_link(&stream);
    let peer_addr = stream.peer_addr().map_err(|e| e.to_string())?;
    node.cast(NodeServerMessage::ConnectionOpenedExternal {
        stream: Box::new(BufferedLink { stream, peer_addr }),
        is_server: false,
    })
    .map_err(|e| e.to_string())?;
    Ok(peer_addr)
}

/// Front side: the links to the actor service's nodes, in shard order (one
/// node for an unsharded service), and the routing of each operation.
pub struct RemoteActors {
    links: Vec<Arc<ShardLink>>,
    timeout: Duration,
    /// Round-robin position for `POST /books` without an idempotency key.
    next: AtomicUsize,
}

/// The link to one node: node `shard.index` of `shard.count`.
struct ShardLink {
    shard: Shard,
    addr: SocketAddr,
    gateway: ArcSwapOption<ActorRef<GatewayMsg>>,
    /// Set while the node at `addr` says it serves another shard.
    mismatch: ArcSwapOption<String>,
}

impl ShardLink {
    /// How error messages name this node.
    fn name(&self) -> String {
        if self.shard.count == 1 {
            "the actor service".to_owned()
        } else {
            format!("actor node {} (shard {})", self.addr, self.shard)
        }
    }

    fn unreachable(&self) -> Reply {
        if let Some(mismatch) = self.mismatch.load_full() {
            return Reply::Refused(Refusal::Unreachable((*mismatch).clone()));
        }
        Reply::Refused(Refusal::Unreachable(format!("no session to {}", self.name())))
    }

    /// Send one operation to this node and wait (at most `timeout`) for its reply.
    async fn call(&self, op: Op, timeout: Duration) -> Reply {
        let Some(gateway) = self.gateway.load_full() else {
            return self.unreachable();
        };
        match gateway
            .call(|reply| GatewayMsg::Execute(Wire(Some(op)), reply), Some(timeout))
            .await
        {
            Ok(CallResult::Success(Wire(Some(reply)))) => reply,
            Ok(CallResult::Success(Wire(None))) => Reply::Refused(Refusal::Unreachable(format!(
                "{} sent a reply this front cannot read",
                self.name()
            ))),
            Ok(CallResult::Timeout) => Reply::Refused(Refusal::Unreachable(format!(
                "no reply from {} within {timeout:?}",
                self.name()
            ))),
            Ok(CallResult::SenderError) | Err(_) => {
                Reply::Refused(Refusal::Unreachable(format!("the session to {} dropped", self.name())))
            }
        }
    }
}

/// Node-session events the front reacts to, from its node server.
#[derive(Clone)]
enum SessionEvent {
    Opened {
        node_id: u64,
        peer_addr: String,
        session: ractor::ActorCell,
    },
    Down {
        node_id: u64,
    },
}

struct SessionEvents(broadcast::Sender<SessionEvent>);

impl NodeEventSubscription for SessionEvents {
    fn node_session_opened(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        let _ = self.0.send(SessionEvent::Opened {
            node_id: ses.node_id,
            peer_addr: ses.peer_addr,
            session: ses.actor.get_cell(),
        });
    }
    fn node_session_disconnected(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        let _ = self.0.send(SessionEvent::Down { node_id: ses.node_id });
    }
    fn node_session_authenticated(&self, _: ractor_cluster::node::NodeServerSessionInformation) {}
}

impl RemoteActors {
    /// Connect to the actor service's nodes at `nodes` (node K of M at
    /// `nodes[K]`; one address for an unsharded service) and keep
    /// reconnecting, with backoff, whenever a session drops. Returns at
    /// once; until a node's session is up, operations on its shard answer
    /// 503 `backend_unavailable`. A node that says it serves another shard
    /// than its place in the list is not used ([`Self::mismatch`]).
    pub async fn connect(nodes: &[SocketAddr], timeout: Duration) -> Result<RemoteActors, ractor::SpawnErr> {
        assert!(!nodes.is_empty(), "a front needs at least one actor-service node");
        let node = start_node(&format!("hostlab-front-{}", std::process::id())).await?;
        let (events_tx, _) = broadcast::channel(1024);
        let _ = node.cast(NodeServerMessage::SubscribeToEvents {
            id: "hostlab-front".into(),
            subscription: Box::new(SessionEvents(events_tx.clone())),
        });
        let count = nodes.len() as u32;
        let links: Vec<Arc<ShardLink>> = nodes
            .iter()
            .enumerate()
            .map(|(index, &addr)| {
                Arc::new(ShardLink {
                    shard: Shard {
                        index: index as u32,
                        count,
                    },
                    addr,
                    gateway: ArcSwapOption::empty(),
                    mismatch: ArcSwapOption::empty(),
                })
            })
            .collect();
        for link in &links {
            tokio::spawn(keep_linked(node.clone(), link.clone(), events_tx.subscribe()));
        }
        Ok(RemoteActors {
            links,
            timeout,
            next: AtomicUsize::new(0),
        })
    }

    /// Whether a session to every node is up.
    pub fn is_linked(&self) -> bool {
        self.links.iter().all(|l| l.gateway.load().is_some())
    }

    /// Why a node is refused: it serves another shard than its place in
    /// the `--actors` list.
    pub fn mismatch(&self) -> Option<String> {
        self.links
            .iter()
            .find_map(|l| l.mismatch.load_full())
            .map(|m| (*m).clone())
    }

    /// Node (shard index) that owns `op`; `None` for whole-store operations.
    fn route(&self, op: &Op) -> Option<usize> {
        let m = self.links.len() as u32;
        let shard = match op {
            Op::ListBooks | Op::Stats => return None,
            Op::AddBook {
                idempotency_key: Some(key),
                ..
            } => shard_of_key(key, m),
            // No key: no retry to keep together; spread the adds over the
            // nodes that are up.
            Op::AddBook {
                idempotency_key: None, ..
            } => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let n = self.links.len();
                return (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&k| self.links[k].gateway.load().is_some())
                    .or(Some(start % n));
            }
            Op::GetBook(id) | Op::DeleteBook(id) => shard_of_book(*id, m),
            Op::RunTask(task) | Op::AcceptTask(task) => shard_of_key(&task.id, m),
            Op::GetTask(id) => shard_of_key(id, m),
        };
        Some(shard as usize)
    }

    /// Send one operation to the node that owns it, or to every node and
    /// merge the replies (list, stats), and wait (at most the timeout).
    pub async fn execute(&self, op: Op) -> Reply {
        if let Some(k) = self.route(&op) {
            return self.links[k].call(op, self.timeout).await;
        }
        if self.links.len() == 1 {
            return self.links[0].call(op, self.timeout).await;
        }
        let mut calls = tokio::task::JoinSet::new();
        for (k, link) in self.links.iter().enumerate() {
            let (link, op, timeout) = (link.clone(), op.clone(), self.timeout);
            calls.spawn(async move { (k, link.call(op, timeout).await) });
        }
        let mut replies: Vec<Option<Reply>> = vec![None; self.links.len()];
        while let Some(joined) = calls.join_next().await {
            if let Ok((k, reply)) = joined {
                replies[k] = Some(reply);
            }
        }
        merge(replies)
    }
}

/// One reply for a whole-store operation from every node's, in shard
/// order: the first refusal, else the books of all nodes by id or the
/// summed stats.
fn merge(replies: Vec<Option<Reply>>) -> Reply {
    let mut books = Vec::new();
    let mut stats = Vec::new();
    for (k, reply) in replies.into_iter().enumerate() {
        match reply {
            Some(Reply::Books(b)) => books.extend(b),
            Some(Reply::Stats(s)) => stats.push(s),
            Some(refused @ Reply::Refused(_)) => return refused,
            Some(other) => {
                return Reply::Refused(Refusal::Unreachable(format!(
                    "shard {k} answered a whole-store operation with {other:?}"
                )));
            }
            None => return Reply::Refused(Refusal::Unreachable(format!("the call to shard {k} failed"))),
        }
    }
    if stats.is_empty() {
        books.sort_by_key(|b| b.id);
        Reply::Books(books)
    } else {
        Reply::Stats(Stats::merge(stats))
    }
}

/// Connect, find the node's gateway, check its shard, wait for the session
/// to drop, repeat.
async fn keep_linked(
    node: ActorRef<NodeServerMessage>,
    link: Arc<ShardLink>,
    mut events: broadcast::Receiver<SessionEvent>,
) {
    let mut backoff = Duration::from_millis(50);
    let name = link.name();
    loop {
        match link_once(&node, &link, &mut events).await {
            Ok((found, node_id)) => {
                tracing::info!("linked to {name}");
                link.mismatch.store(None);
                link.gateway.store(Some(Arc::new(found)));
                backoff = Duration::from_millis(50);
                loop {
                    match events.recv().await {
                        Ok(SessionEvent::Down { node_id: down }) if down == node_id => break,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
                link.gateway.store(None);
                tracing::warn!("lost the session to {name}; reconnecting");
            }
            Err(LinkError::Mismatch(message)) => {
                tracing::error!("{message}");
                link.mismatch.store(Some(Arc::new(message)));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(LinkError::Other(e)) => {
                tracing::debug!("{name} not reachable yet: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

enum LinkError {
    /// The node serves another shard than its place in the list.
    Mismatch(String),
    Other(String),
}

impl From<String> for LinkError {
    fn from(e: String) -> Self {
        LinkError::Other(e)
    }
}

/// One connection attempt: open the session, wait until the node's gateway
/// shows up in the process group, and ask it which shard it serves.
async fn link_once(
    node: &ActorRef<NodeServerMessage>,
    link: &ShardLink,
    events: &mut broadcast::Receiver<SessionEvent>,
) -> Result<(ActorRef<GatewayMsg>, u64), LinkError> {
    let connect = client_connect(node, link.addr);
    let peer = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| "connect timed out".to_owned())??
        .to_string();
    // The node server names the session it opened for our stream.
    let opened = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.recv().await {
                Ok(SessionEvent::Opened {
                    node_id,
                    peer_addr,
                    session,
                }) if peer_addr == peer => return Some((node_id, session)),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await;
    let Ok(Some((node_id, session))) = opened else {
        return Err(LinkError::Other(
            "the node server opened no session for the link".into(),
        ));
    };
    let result = find_gateway(node_id, link).await;
    if result.is_err() {
        session.stop(None);
    }
    result.map(|gateway| (gateway, node_id))
}

/// The gateway of session `node_id`, once it serves `link`'s shard.
async fn find_gateway(node_id: u64, link: &ShardLink) -> Result<ActorRef<GatewayMsg>, LinkError> {
    let mut found = None;
    for _ in 0..200 {
        found = ractor::pg::get_members(&GATEWAY_GROUP.to_owned())
            .into_iter()
            .find(|cell| cell.get_id().node() == node_id);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Some(cell) = found else {
        return Err(LinkError::Other(format!(
            "the gateway of {} did not appear within 2 s",
            link.name()
        )));
    };
    let gateway = ActorRef::<GatewayMsg>::from(cell);
    let served = match gateway
        .call(
            |reply| GatewayMsg::Shard(Wire(Some(())), reply),
            Some(Duration::from_secs(2)),
        )
        .await
    {
        Ok(CallResult::Success(Wire(Some(shard)))) => shard,
        _ => {
            return Err(LinkError::Other(format!(
                "{} did not say which shard it serves",
                link.name()
            )));
        }
    };
    if served != link.shard {
        return Err(LinkError::Mismatch(format!(
            "the actor node at {} serves shard {served}, but it is number {} of {} in --actors (it must serve {}); \
             list the nodes in shard order, node I of M started with --shard I/M",
            link.addr, link.shard.index, link.shard.count, link.shard
        )));
    }
    Ok(gateway)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::books::AddError;
    use crate::model::{Book, InvalidRow, NewBook, Row, TaskRecord, TaskRequest, TaskStatus, Validation};

    fn round_trip<T: Serialize + DeserializeOwned>(value: T) -> Option<T> {
        Wire::<T>::from_bytes(Wire(Some(value)).into_bytes()).0
    }

    fn record() -> TaskRecord {
        TaskRecord {
            id: "t-1".into(),
            kind: "ledger".into(),
            status: TaskStatus::Done,
            actor: 3,
            validation: Validation {
                rows: 2,
                invalid: vec![InvalidRow {
                    row: 1,
                    reason: "bad account".into(),
                }],
                invalid_count: 1,
                total_debit_cents: 10,
                total_credit_cents: 10,
                balanced: true,
            },
        }
    }

    /// Every kind of operation and reply survives the binary link encoding.
    #[test]
    fn ops_and_replies_cross_the_wire() {
        let task = TaskRequest {
            id: "t-1".into(),
            kind: "ledger".into(),
            rows: vec![Row {
                account: "4000-100".into(),
                debit_cents: 10,
                credit_cents: 0,
            }],
        };
        let book = NewBook {
            title: "T".into(),
            author: "A".into(),
            year: None,
        };
        let ops = [
            Op::AddBook {
                book,
                idempotency_key: Some("k".into()),
            },
            Op::ListBooks,
            Op::GetBook(7),
            Op::DeleteBook(7),
            Op::RunTask(task.clone()),
            Op::AcceptTask(task),
            Op::GetTask("t-1".into()),
            Op::Stats,
        ];
        for op in ops {
            let before = format!("{op:?}");
            assert_eq!(format!("{:?}", round_trip(op).expect("decodes")), before);
        }
        let book = Arc::new(Book {
            id: 1,
            title: "T".into(),
            author: "A".into(),
            year: Some(1999),
        });
        let replies = [
            Reply::Added(Err(AddError::Full(3))),
            Reply::Books(vec![book.clone(), book.clone()]),
            Reply::Book(Some(book)),
            Reply::Deleted(true),
            Reply::Task(record()),
            Reply::TaskRecord(Some(record())),
            Reply::Refused(Refusal::Overloaded("full".into())),
        ];
        for reply in replies {
            let before = format!("{reply:?}");
            assert_eq!(format!("{:?}", round_trip(reply).expect("decodes")), before);
        }
    }

    /// A task record stays flat in JSON (the HTTP API) and nested in postcard.
    #[test]
    fn task_records_are_flat_in_json_only() {
        let json = serde_json::to_value(record()).unwrap();
        assert_eq!(json["rows"], 2, "{json}");
        assert_eq!(json["balanced"], true, "{json}");
        assert!(json.get("validation").is_none(), "{json}");
        assert_eq!(serde_json::from_value::<TaskRecord>(json).unwrap(), record());
        assert_eq!(round_trip(record()), Some(record()));
    }

    /// Bytes a peer got wrong decode to nothing instead of a panic.
    #[test]
    fn bad_bytes_decode_to_none() {
        for bytes in [vec![], vec![1], vec![1, 200, 200, 200], b"{\"GetBook\":1}".to_vec()] {
            assert!(Wire::<Op>::from_bytes(bytes.clone()).0.is_none(), "{bytes:?}");
        }
    }
}
