//! [`ClientBuilder`]: the URL, the dialect, the token and the core's tuning.

use crate::client::Client;
use crate::driver::Shared;
use crate::events::Events;
use crate::transport::{parse_url, Dialer, TokenFuture, TokenSource};
use crate::{BoxError, Error, Result};
use hublink_core::{BackoffConfig, Config, DialectKind, HeartbeatConfig, QueueConfig, SUBPROTOCOL};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Configures and starts a [`Client`].
///
/// Defaults follow PROTOCOL.md: the `hublink` dialect, subprotocol
/// `hublink.v1`, backoff 1 s to 30 s, liveness timeout derived from the
/// server's heartbeat, an offline queue of 1,024 frames for 60 s.
#[must_use]
pub struct ClientBuilder {
    url: String,
    dialect: DialectKind,
    token: Option<TokenSource>,
    token_in_query: Option<bool>,
    subprotocol: Option<Option<String>>,
    config: Config,
    seed: Option<u64>,
    shared: Arc<Shared>,
    #[cfg(feature = "rustls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("dialect", &self.dialect)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            url: url.into(),
            dialect: DialectKind::Hublink,
            token: None,
            token_in_query: None,
            subprotocol: None,
            config: Config::default(),
            seed: None,
            shared: Arc::new(Shared::default()),
            #[cfg(feature = "rustls")]
            tls: None,
        }
    }

    /// The server's dialect (default [`DialectKind::Hublink`]).
    pub fn dialect(mut self, dialect: DialectKind) -> Self {
        self.dialect = dialect;
        self
    }

    /// A fixed token (a JWT for hublink-server), sent on every attempt.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(TokenSource::Fixed(token.into()));
        self
    }

    /// A function called before every attempt, the first and each reconnect,
    /// for a fresh token. If it fails, the attempt counts as failed and is
    /// retried with backoff.
    pub fn token_provider<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
    {
        self.token = Some(TokenSource::Provider(Arc::new(move || {
            Box::pin(provider()) as TokenFuture
        })));
        self
    }

    /// Send the token as `?token=` (true) or as `Authorization: Bearer`
    /// (false). Default: the query for the `actions` dialect, whose servers
    /// know no other way, the header otherwise (it stays out of access logs).
    pub fn token_in_query(mut self, yes: bool) -> Self {
        self.token_in_query = Some(yes);
        self
    }

    /// The subprotocol to offer, or `None` for none. Default: `hublink.v1`
    /// for the `hublink` dialect, none for the seed dialects. A server that
    /// selects none is accepted all the same (PROTOCOL.md section 1).
    pub fn subprotocol(mut self, subprotocol: Option<&str>) -> Self {
        self.subprotocol = Some(subprotocol.map(str::to_owned));
        self
    }

    /// Reconnect delays.
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// Liveness detection.
    pub fn heartbeat(mut self, heartbeat: HeartbeatConfig) -> Self {
        self.config.heartbeat = heartbeat;
        self
    }

    /// Limits of the offline send queue.
    pub fn queue(mut self, queue: QueueConfig) -> Self {
        self.config.queue = queue;
        self
    }

    /// How long one attempt may take to open (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout_ms = timeout.as_millis() as u64;
        self
    }

    /// The whole core configuration at once. Its `seed` is used only if
    /// [`seed`](Self::seed) is also called; otherwise each client draws its own.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// A fixed jitter seed, for reproducible tests. By default every client
    /// draws one from the OS, so that a fleet does not retry in lockstep.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The rustls configuration for `wss://` (default: the webpki root
    /// certificates, ring provider).
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// A stream of events from the very start, the first state change
    /// included (see [`Client::events`], which sees them from its call on).
    pub fn events(&self) -> Events {
        self.shared.add_sink(false)
    }

    /// As [`events`](Self::events), with every message (see [`Client::monitor`]).
    pub fn monitor(&self) -> Events {
        self.shared.add_sink(true)
    }

    /// Checks the URL and starts the client's driver task. The client connects
    /// in the background; watch [`Client::state_changes`] or await
    /// [`Client::connected`]. Must be called within a tokio runtime.
    pub fn connect(self) -> Result<Client> {
        let uri = parse_url(&self.url)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut config = self.config;
        config.seed = self.seed.unwrap_or_else(os_seed);
        let subprotocol = self.subprotocol.unwrap_or_else(|| {
            (self.dialect == DialectKind::Hublink).then(|| SUBPROTOCOL.to_owned())
        });
        let dialer = Dialer {
            uri,
            token: self.token,
            token_in_query: self
                .token_in_query
                .unwrap_or(self.dialect == DialectKind::Actions),
            subprotocol,
            server_ignores_subprotocol: AtomicBool::new(false),
            #[cfg(feature = "rustls")]
            tls: self.tls,
        };
        Ok(Client::start(
            runtime,
            config,
            self.dialect,
            dialer,
            self.shared,
        ))
    }
}

/// A seed from the OS's randomness (through the std hasher's random keys),
/// different for each client of a process.
fn os_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_between_clients() {
        let seeds: std::collections::HashSet<u64> = (0..1_000).map(|_| os_seed()).collect();
        assert_eq!(seeds.len(), 1_000);
    }
}
