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
//! reconnect by itself). Both ends set TCP keep-alive and a user timeout on
//! the link, so a cut without a reset (a veth down, a host gone) drops the
//! session within [`LINK_DEAD_AFTER`] instead of the OS's 15 minutes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, BytesConvertable, RpcReplyPort};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage, RactorClusterMessage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::ops::{LocalActors, Op, Refusal, Reply};

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
}

/// Service side: runs remote operations on the local actors.
pub struct Gateway;

impl Actor for Gateway {
    type Msg = GatewayMsg;
    type State = Arc<LocalActors>;
    type Arguments = Arc<LocalActors>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        local: Arc<LocalActors>,
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(GATEWAY_GROUP.to_owned(), vec![myself.get_cell()]);
        Ok(local)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        local: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let GatewayMsg::Execute(Wire(op), reply) = message;
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
        let Ok(local_addr) = stream.local_addr() else { continue };
        let opened = NodeServerMessage::ConnectionOpened {
            stream: Box::new(ractor_cluster::NetworkStream::Raw {
                peer_addr,
                local_addr,
                stream,
            }),
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

/// Front side: open a node link to `service` (ractor_cluster's own
/// `client_connect`, with [`tune_link`]'s socket options) and hand it to `node`.
async fn client_connect(node: &ActorRef<NodeServerMessage>, service: SocketAddr) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(service)
        .await
        .map_err(|e| e.to_string())?;
    tune_link(&stream);
    let (peer_addr, local_addr) = (
        stream.peer_addr().map_err(|e| e.to_string())?,
        stream.local_addr().map_err(|e| e.to_string())?,
    );
    node.cast(NodeServerMessage::ConnectionOpened {
        stream: Box::new(ractor_cluster::NetworkStream::Raw {
            peer_addr,
            local_addr,
            stream,
        }),
        is_server: false,
    })
    .map_err(|e| e.to_string())
}

/// Front side: the link to the actor service's gateway.
pub struct RemoteActors {
    gateway: Arc<ArcSwapOption<ActorRef<GatewayMsg>>>,
    timeout: Duration,
}

/// Node-session events the front reacts to.
struct SessionEvents(mpsc::UnboundedSender<()>);

impl NodeEventSubscription for SessionEvents {
    fn node_session_opened(&self, _: ractor_cluster::node::NodeServerSessionInformation) {}
    fn node_session_disconnected(&self, _: ractor_cluster::node::NodeServerSessionInformation) {
        let _ = self.0.send(());
    }
    fn node_session_authenticated(&self, _: ractor_cluster::node::NodeServerSessionInformation) {}
}

impl RemoteActors {
    /// Connect to the actor service at `service` and keep reconnecting,
    /// with backoff, whenever the session drops. Returns at once; until the
    /// first session is up, operations answer 503 `backend_unavailable`.
    pub async fn connect(service: SocketAddr, timeout: Duration) -> Result<RemoteActors, ractor::SpawnErr> {
        let node = start_node(&format!("hostlab-front-{}", std::process::id())).await?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let _ = node.cast(NodeServerMessage::SubscribeToEvents {
            id: "hostlab-front".into(),
            subscription: Box::new(SessionEvents(events_tx)),
        });
        let gateway = Arc::new(ArcSwapOption::empty());
        tokio::spawn(keep_linked(node, service, gateway.clone(), events));
        Ok(RemoteActors { gateway, timeout })
    }

    /// Whether a session to the actor service is up.
    pub fn is_linked(&self) -> bool {
        self.gateway.load().is_some()
    }

    /// Send one operation to the actor service and wait (at most the
    /// timeout) for its reply.
    pub async fn execute(&self, op: Op) -> Reply {
        let Some(gateway) = self.gateway.load_full() else {
            return Reply::Refused(Refusal::Unreachable("no session to the actor service".into()));
        };
        match gateway
            .call(|reply| GatewayMsg::Execute(Wire(Some(op)), reply), Some(self.timeout))
            .await
        {
            Ok(CallResult::Success(Wire(Some(reply)))) => reply,
            Ok(CallResult::Success(Wire(None))) => Reply::Refused(Refusal::Unreachable(
                "the actor service sent a reply this front cannot read".into(),
            )),
            Ok(CallResult::Timeout) => Reply::Refused(Refusal::Unreachable(format!(
                "no reply from the actor service within {:?}",
                self.timeout
            ))),
            Ok(CallResult::SenderError) | Err(_) => {
                Reply::Refused(Refusal::Unreachable("the session to the actor service dropped".into()))
            }
        }
    }
}

/// Connect, find the gateway, wait for the session to drop, repeat.
async fn keep_linked(
    node: ActorRef<NodeServerMessage>,
    service: SocketAddr,
    gateway: Arc<ArcSwapOption<ActorRef<GatewayMsg>>>,
    mut disconnected: mpsc::UnboundedReceiver<()>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match link_once(&node, service).await {
            Ok(found) => {
                tracing::info!("linked to the actor service at {service}");
                gateway.store(Some(Arc::new(found)));
                backoff = Duration::from_millis(50);
                while disconnected.try_recv().is_ok() {}
                if disconnected.recv().await.is_none() {
                    return;
                }
                gateway.store(None);
                tracing::warn!("lost the session to the actor service at {service}; reconnecting");
            }
            Err(e) => {
                tracing::debug!("actor service at {service} not reachable yet: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// One connection attempt: open the session and wait until the service's
/// gateway shows up in the process group.
async fn link_once(node: &ActorRef<NodeServerMessage>, service: SocketAddr) -> Result<ActorRef<GatewayMsg>, String> {
    let connect = client_connect(node, service);
    tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| "connect timed out".to_owned())??;
    for _ in 0..200 {
        let remote = ractor::pg::get_members(&GATEWAY_GROUP.to_owned())
            .into_iter()
            .find(|cell| !cell.get_id().is_local());
        if let Some(cell) = remote {
            return Ok(ActorRef::from(cell));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("the actor service's gateway did not appear within 2 s".into())
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
