//! [`ClientBuilder`]: the URL, the dialect, the token and the core's tuning.

use crate::client::Client;
use crate::driver::Shared;
use crate::events::Events;
use crate::outbox::Outbox;
use crate::transport::{parse_url, Dialer, TokenFuture, TokenSource};
use crate::{BoxError, Error, Result};
use hublink_core::{BackoffConfig, Config, DialectKind, HeartbeatConfig, QueueConfig, SUBPROTOCOL};
use std::future::Future;
use std::path::PathBuf;
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
    outbox: Option<PathBuf>,
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
            .field("outbox", &self.outbox)
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
            outbox: None,
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

    /// Keeps the publishes still unanswered in the file at `path` (created
    /// if missing), for a tool that restarts: a client built later on the
    /// same file, after a restart or a crash, sends them again first, before
    /// any new publish, in their original order, with the same ids, and
    /// with the time to live they had left. The server publishes each once:
    /// hublink-server answers a repeated id within its dedupe window (10 min
    /// by default; keep [`QueueConfig::ttl_ms`] below it) with the first
    /// publish's position. Their outcomes come as
    /// [`Event::Published`](crate::Event::Published) and
    /// [`Event::PublishFailed`](crate::Event::PublishFailed). Off by default.
    ///
    /// The time to live counts on the wall clock, the time the tool was down
    /// included. Those whose time ran out meanwhile are not sent: each comes
    /// as [`Event::PublishFailed`](crate::Event::PublishFailed) with
    /// [`PublishError::Expired`](hublink_core::PublishError::Expired)
    /// (`sent: true`: it may have been published) first thing on the
    /// builder's [`events`](Self::events) (take that stream before
    /// `connect()` to see them).
    ///
    /// A publish is in the file once [`Client::publish`] or
    /// [`Client::queue_publish`] has its id, before it is sent. It leaves
    /// the file when the server answers or refuses it, or when its time to
    /// live runs out; one still unanswered when the client stops (closed,
    /// dropped, gave up, forbidden) stays for the next client.
    ///
    /// The file is a log of JSON lines, one appended per publish and one
    /// per outcome, rewritten compacted on opening (a temp file renamed
    /// over it) and emptied whenever nothing is left; a last line torn by a
    /// crash is skipped with a warning. Each line is handed to the OS as it
    /// is written, in the driver task (a short blocking write per publish):
    /// the outbox survives the process being killed, but it is not synced
    /// to the disk, so a power cut or an OS crash may lose its latest lines.
    /// Payloads are stored as published: give the file the permissions they
    /// call for.
    ///
    /// One client at a time per file, in any process: the client holds an
    /// advisory lock on `<path>.lock` (flock; `LockFileEx` on Windows),
    /// which the OS releases when the process ends, so a crash leaves no
    /// stale lock; it is released before [`Client::close`] returns. Local
    /// file systems only (advisory locks over NFS are not to be trusted).
    ///
    /// [`connect`](Self::connect) fails with [`Error::Outbox`], naming the
    /// path and the OS's error, when the file cannot be read, written or
    /// locked, and with a dialect that does not acknowledge publishes (of
    /// the built-in ones only [`DialectKind::Hublink`] does): nothing could
    /// settle them. The server must dedupe by id (hublink-server does):
    /// elsewhere a repeat may be published twice.
    pub fn outbox(mut self, path: impl Into<PathBuf>) -> Self {
        self.outbox = Some(path.into());
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

    /// Checks the URL, opens the [outbox](Self::outbox) if there is one, and
    /// starts the client's driver task. The client connects
    /// in the background; watch [`Client::state_changes`] or await
    /// [`Client::connected`]. Must be called within a tokio runtime.
    pub fn connect(self) -> Result<Client> {
        let uri = parse_url(&self.url)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let outbox = match &self.outbox {
            Some(path) => {
                if !self.dialect.build::<serde_json::Value>().acks_publishes() {
                    return Err(Error::Outbox {
                        path: path.clone(),
                        problem: format!(
                            "the {} dialect does not acknowledge publishes, so nothing \
                             could settle them; only the hublink dialect does",
                            self.dialect
                        ),
                    });
                }
                Some(Outbox::open(path)?)
            }
            None => None,
        };
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
            outbox,
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
