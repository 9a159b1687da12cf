//! The pub/sub link: one connection per node, owned by one task, which
//! (re)connects with backoff, runs the channel commands in order, hands the
//! messages it receives to the local subscribers and catches topics up after
//! a gap.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{PubSubSink, PubSubStream};
use ::redis::{Client, Msg, Value as RValue};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::health::{unsupported_deployment, Health};
use super::history::{bounded, RedisHistory, OP_TIMEOUT};
use super::topics::{Catch, LocalTopics};
use crate::published::Published;
use crate::{Error, Result};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the link is asked to do, in order.
pub(super) enum Cmd {
    /// Subscribe the topic's channel; answers once it is confirmed.
    Subscribe(String, oneshot::Sender<Result<()>>),
    /// Unsubscribe the topic's channel, if nobody here follows it any more.
    Unsubscribe(String),
    /// Subscribe a channel glob.
    PSubscribe(String),
    /// Unsubscribe a channel glob, if no pattern here uses it any more.
    PUnsubscribe(String),
}

/// The message on the channel.
#[derive(serde::Deserialize)]
struct Wire {
    seq: u64,
    epoch: String,
    ts: u64,
    ev: Option<u64>,
    data: Value,
}

/// What a node shares between its broker and its link task.
pub(super) struct Node {
    pub(super) client: Client,
    pub(super) history: RedisHistory,
    pub(super) local: LocalTopics,
    pub(super) health: Health,
    pub(super) node_id: String,
    /// XORed into event ids so that two nodes' ids never collide.
    pub(super) event_salt: u64,
    pub(super) cmds: mpsc::UnboundedSender<Cmd>,
}

impl Node {
    /// Asks the link to unsubscribe `topic`'s channel (its last member left).
    pub(super) fn last_left(&self, topic: &str) {
        let _ = self.cmds.send(Cmd::Unsubscribe(topic.to_string()));
    }

    /// Asks the server at the address what it is (`INFO`): `Ok(Some(why))`
    /// when it is a Redis this broker cannot use. A server that does not let
    /// this client run `INFO` (ACLs) is taken for a plain Redis.
    async fn check_deployment(&self) -> std::result::Result<Option<String>, String> {
        let mut conn = bounded("connect", self.client.get_multiplexed_async_connection()).await?;
        let info = tokio::time::timeout(
            OP_TIMEOUT,
            ::redis::cmd("INFO").query_async::<String>(&mut conn),
        )
        .await;
        match info {
            Ok(Ok(info)) => Ok(unsupported_deployment(&self.history.addr, &info)),
            Ok(Err(e)) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                Err(format!("INFO: {e}"))
            }
            Ok(Err(e)) => {
                tracing::debug!(
                    node = %self.node_id,
                    "redis: INFO refused ({e}): assuming a standalone Redis"
                );
                Ok(None)
            }
            Err(_) => Err(format!("INFO: no answer within {OP_TIMEOUT:?}")),
        }
    }

    /// A message from the pub/sub connection.
    fn on_pubsub(self: &Arc<Self>, msg: Msg) {
        let channel = msg.get_channel_name();
        let Some(topic) = self.history.keys.topic_of(channel) else {
            return;
        };
        let wire: Wire = match serde_json::from_slice(msg.get_payload_bytes()) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("redis: unreadable message on {channel}: {e}");
                return;
            }
        };
        let published = Arc::new(Published::new(
            topic.into(),
            wire.seq,
            wire.epoch.into(),
            wire.data,
            wire.ts,
            wire.ev,
        ));
        if let Ok(Some(glob)) = msg.get_pattern::<Option<String>>() {
            self.local.registry.deliver_keyed(&glob, &published);
            return;
        }
        if self.local.on_message(&self.node_id, topic, published) {
            tokio::spawn(resync(self.clone(), topic.to_string()));
        }
    }

    /// The pub/sub connection is gone: every topic will have to catch up.
    fn connection_lost(&self, reason: String) {
        self.history.errors.fetch_add(1, Ordering::Relaxed);
        self.health.set_down(reason);
        self.local.connection_lost();
    }

    /// A command while the link is down.
    fn offline(&self, cmd: Cmd) {
        match cmd {
            Cmd::Subscribe(_, reply) => {
                let _ = reply.send(Err(Error::BrokerUnavailable(self.health.unreachable())));
            }
            Cmd::Unsubscribe(t) => {
                self.local.forget_if_empty(&t);
            }
            Cmd::PSubscribe(_) | Cmd::PUnsubscribe(_) => {}
        }
    }

    /// A command on a working link; `Err` when the link failed.
    async fn online(&self, sink: &mut PubSubSink, cmd: Cmd) -> std::result::Result<(), String> {
        match cmd {
            Cmd::Subscribe(topic, reply) => {
                if self.local.channel_subscribed(&topic) != Some(false) {
                    let _ = reply.send(Ok(()));
                    return Ok(());
                }
                let ch = self.history.keys.channel(&topic);
                match bounded("SUBSCRIBE", sink.subscribe(&ch)).await {
                    Ok(()) => {
                        self.local.set_channel_subscribed(&topic);
                        let _ = reply.send(Ok(()));
                        Ok(())
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::BrokerUnavailable(e.clone())));
                        Err(e)
                    }
                }
            }
            Cmd::Unsubscribe(topic) => {
                if self.local.forget_if_empty(&topic) {
                    let ch = self.history.keys.channel(&topic);
                    bounded("UNSUBSCRIBE", sink.unsubscribe(&ch)).await?;
                }
                Ok(())
            }
            Cmd::PSubscribe(glob) => bounded("PSUBSCRIBE", sink.psubscribe(&glob)).await,
            Cmd::PUnsubscribe(glob) => {
                if !self.local.registry.has_key(&glob) {
                    bounded("PUNSUBSCRIBE", sink.punsubscribe(&glob)).await?;
                }
                Ok(())
            }
        }
    }

    /// After a (re)connect: the channels of every topic and pattern with local
    /// subscribers.
    async fn resubscribe(&self, sink: &mut PubSubSink) -> std::result::Result<(), String> {
        let wanted = self.local.wanted();
        for chunk in wanted.chunks(256) {
            let channels: Vec<String> = chunk
                .iter()
                .map(|(t, _)| self.history.keys.channel(t))
                .collect();
            bounded("SUBSCRIBE", sink.subscribe(channels)).await?;
            LocalTopics::subscribed(chunk);
        }
        let globs = self.local.registry.keys();
        if !globs.is_empty() {
            bounded("PSUBSCRIBE", sink.psubscribe(globs)).await?;
        }
        Ok(())
    }
}

/// Catches `topic` up with the stream after a gap: fills what this node missed,
/// or tells its subscribers through [`crate::broker::Subscriber::missed`].
async fn resync(node: Arc<Node>, topic: String) {
    let Some(catch) = Catch::start(&node.local, &topic) else {
        return;
    };
    let snap = match &catch.since {
        Some(s) => Some(node.history.snapshot(&topic, Some(s), false).await),
        None => None,
    };
    for s in catch.finish(&node.node_id, &topic, snap) {
        s.missed(&topic);
    }
}

/// Owns the pub/sub connection: (re)connects, runs the channel commands in
/// order, delivers messages, pings every second.
pub(super) async fn run(node: Arc<Node>, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut delay = BACKOFF_MIN;
    loop {
        let mut failure = None;
        let connected = match node.check_deployment().await {
            Ok(None) => {
                if node.health.usable_again() {
                    tracing::info!(node = %node.node_id, "redis: {} is a usable Redis again", node.history.addr);
                }
                bounded("connect", node.client.get_async_pubsub()).await
            }
            Ok(Some(why)) => {
                node.health.refuse(why.clone());
                Err(why)
            }
            Err(e) => Err(e),
        };
        match connected {
            Ok(ps) => {
                let (mut sink, mut stream) = ps.split();
                match node.resubscribe(&mut sink).await {
                    Ok(()) => {
                        node.health.set_up();
                        delay = BACKOFF_MIN;
                        for topic in node.local.behind() {
                            tokio::spawn(resync(node.clone(), topic));
                        }
                        let Some(reason) = serve(&node, &mut sink, &mut stream, &mut cmds).await
                        else {
                            return;
                        };
                        node.connection_lost(reason);
                    }
                    Err(e) => failure = Some(e),
                }
            }
            Err(e) => failure = Some(e),
        }
        if let Some(e) = failure {
            node.health.set_down(e);
        }
        // Wait before the next attempt, answering commands meanwhile.
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                c = cmds.recv() => match c {
                    Some(c) => node.offline(c),
                    None => return,
                },
            }
        }
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

/// Serves one pub/sub connection; returns why it ended (`None`: the broker is gone).
async fn serve(
    node: &Arc<Node>,
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
) -> Option<String> {
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    ping.tick().await;
    loop {
        tokio::select! {
            m = stream.next() => match m {
                Some(m) => node.on_pubsub(m),
                None => return Some("the pub/sub connection closed".into()),
            },
            c = cmds.recv() => match c {
                Some(c) => {
                    if let Err(e) = node.online(sink, c).await {
                        return Some(e);
                    }
                }
                None => return None,
            },
            _ = ping.tick() => {
                // Any answer will do: a connection with subscriptions answers
                // `["pong", ""]` (RESP2 pub/sub mode), one without `PONG`.
                if let Err(e) = bounded("PING", sink.ping::<RValue>()).await {
                    return Some(e);
                }
            }
        }
    }
}
