//! [`Subscriptions`]: what one connection follows, and the one way every
//! endpoint subscribes: the topic checked, the policy asked, the limit held,
//! the broker told, the ready callback (ack, replay, latest value) run. What
//! stops it is a typed [`Refusal`]; each endpoint says it in its own words.

use std::sync::Arc;

use crate::broker::{OnReady, Subscribe};
use crate::conn::Ctx;
use crate::history::Position;
use crate::published::Shape;
use crate::topic::validate_topic;
use crate::Error;

use super::delivery::{Delivery, Filter};

/// Why a subscription was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// Not a valid topic name.
    #[error(transparent)]
    InvalidTopic(Error),
    /// The policy does not let this client follow the topic.
    #[error(transparent)]
    Forbidden(Error),
    /// The policy cannot scope the room the topic names (not `kind:id`).
    #[error(transparent)]
    InvalidRoom(Error),
    /// The connection follows `limit` topics already.
    #[error("limit of {limit} subscriptions per connection reached")]
    TooMany {
        /// `--max-subscriptions`.
        limit: usize,
    },
    /// The broker did not take it (its backend is unreachable).
    #[error(transparent)]
    Broker(Error),
}

/// The topics and patterns one connection follows, in the order it joined
/// them, all delivered through one [`Delivery`].
pub(crate) struct Subscriptions {
    shape: Shape,
    /// Until the first subscription makes the delivery.
    filter: Option<Filter>,
    delivery: Option<Arc<Delivery>>,
    topics: Vec<String>,
    patterns: Vec<String>,
}

impl Subscriptions {
    /// Nothing followed yet; messages go out in `shape`.
    pub(crate) fn new(shape: Shape) -> Subscriptions {
        Subscriptions::filtered(shape, Filter::All)
    }

    /// [`Subscriptions::new`], taking only the messages `filter` passes.
    pub(crate) fn filtered(shape: Shape, filter: Filter) -> Subscriptions {
        Subscriptions {
            shape,
            filter: Some(filter),
            delivery: None,
            topics: Vec::new(),
            patterns: Vec::new(),
        }
    }

    /// The shape messages go out in.
    pub(crate) fn shape(&self) -> Shape {
        self.shape
    }

    /// The topics followed, in the order joined.
    pub(crate) fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The connection's one subscriber, made on first use.
    fn delivery(&mut self, ctx: &Ctx) -> Arc<Delivery> {
        let (shape, filter) = (self.shape, &mut self.filter);
        self.delivery
            .get_or_insert_with(|| {
                Arc::new(Delivery {
                    conn: ctx.conn.clone(),
                    shape,
                    filter: filter.take().unwrap_or(Filter::All),
                })
            })
            .clone()
    }

    /// Subscribes to `topic` from now on, nothing to run when it starts.
    pub(crate) async fn subscribe(&mut self, ctx: &mut Ctx, topic: &str) -> Result<(), Refusal> {
        self.subscribe_with(ctx, topic, None, Box::new(|_| {}))
            .await
    }

    /// The pipeline: a valid name, allowed by the policy, within
    /// `--max-subscriptions` (a topic followed already may be subscribed to
    /// again: it restarts from `since`), then registered with the broker,
    /// which runs `on_ready` before the first live message.
    pub(crate) async fn subscribe_with(
        &mut self,
        ctx: &mut Ctx,
        topic: &str,
        since: Option<Position>,
        on_ready: OnReady<'_>,
    ) -> Result<(), Refusal> {
        validate_topic(topic, ctx.state.config.max_topic_len).map_err(Refusal::InvalidTopic)?;
        ctx.state
            .policy
            .may_subscribe(ctx.claims.as_ref(), topic)
            .map_err(|e| match e {
                Error::InvalidRoom { .. } => Refusal::InvalidRoom(e),
                e => Refusal::Forbidden(e),
            })?;
        let known = self.topics.iter().any(|t| t == topic);
        let limit = ctx.state.config.max_subscriptions;
        if !known && self.topics.len() >= limit {
            return Err(Refusal::TooMany { limit });
        }
        self.register(ctx, topic, since, on_ready)
            .await
            .map_err(Refusal::Broker)?;
        if !known {
            self.topics.push(topic.to_string());
        }
        Ok(())
    }

    /// Follows `topic`, which the endpoint admitted at the upgrade (its path
    /// names it): no checks left but the broker's.
    pub(crate) async fn follow(&mut self, ctx: &mut Ctx, topic: &str) -> crate::Result<()> {
        self.register(ctx, topic, None, Box::new(|_| {})).await?;
        self.topics.push(topic.to_string());
        Ok(())
    }

    /// Follows every topic matching `pattern` (no history, no replay).
    pub(crate) fn follow_pattern(&mut self, ctx: &mut Ctx, pattern: &str) {
        let delivery = self.delivery(ctx);
        ctx.state
            .broker
            .subscribe_pattern(pattern, ctx.conn.id, delivery);
        self.patterns.push(pattern.to_string());
    }

    async fn register(
        &mut self,
        ctx: &mut Ctx,
        topic: &str,
        since: Option<Position>,
        on_ready: OnReady<'_>,
    ) -> crate::Result<()> {
        let delivery = self.delivery(ctx);
        let broker = ctx.state.broker.clone();
        broker
            .subscribe(Subscribe {
                topic,
                id: ctx.conn.id,
                subscriber: delivery,
                since,
                on_ready,
            })
            .await
    }

    /// Stops following `topic`; false when it was not followed.
    pub(crate) fn unsubscribe(&mut self, ctx: &mut Ctx, topic: &str) -> bool {
        let Some(at) = self.topics.iter().position(|t| t == topic) else {
            return false;
        };
        self.topics.remove(at);
        ctx.state.broker.unsubscribe(topic, ctx.conn.id);
        true
    }

    /// The connection ended: every topic and pattern let go.
    pub(crate) fn close(&mut self, ctx: &mut Ctx) {
        for t in std::mem::take(&mut self.topics) {
            ctx.state.broker.unsubscribe(&t, ctx.conn.id);
        }
        for p in std::mem::take(&mut self.patterns) {
            ctx.state.broker.unsubscribe_pattern(&p, ctx.conn.id);
        }
    }
}
