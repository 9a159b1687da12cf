//! An in-process hublink-server that can be stopped and started again on the
//! same port, keeping its history (as a server backed by a persistent store
//! would) or losing it (a new epoch).

use hublink_server::auth::Claims;
use hublink_server::{app, AppState, Config};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The JWT secret of servers started with [`TestServer::config_with_auth`].
pub const SECRET: &str = "hublink-tests-secret-0123456789";

/// A hublink-server serving [`app`] on a fixed loopback port.
pub struct TestServer {
    /// Where it listens; the same across restarts.
    pub addr: SocketAddr,
    config: Config,
    state: Arc<AppState>,
    serve: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A configuration with short intervals: heartbeats every 200 ms,
    /// `retry_after` 0 s, anonymous publishing, no auth.
    pub fn config() -> Config {
        let mut c = Config::defaults();
        c.heartbeat_interval = Duration::from_millis(200);
        c.machines_ping_interval = Duration::from_millis(200);
        c.stale_timeout = Some(Duration::from_secs(3));
        c.shutdown_grace = Duration::from_secs(2);
        c.retry_after = 0;
        c.anonymous_publish = true;
        c
    }

    /// [`config`](Self::config) with JWT auth on (secret [`SECRET`]).
    pub fn config_with_auth() -> Config {
        let mut c = Self::config();
        c.jwt_secret = Some(SECRET.to_owned());
        c
    }

    /// Starts on a fresh loopback port.
    pub async fn start(config: Config) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = AppState::new(config.clone()).expect("server state");
        let mut server = TestServer {
            addr,
            config,
            state,
            serve: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut stop = self.state.shutdown_flag().subscribe();
        let router = app(self.state.clone());
        self.serve = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        }));
    }

    /// `ws://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The server's shared state.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Publishes `data` on `topic` as the HTTP API would; returns its `seq`.
    pub async fn publish(&self, topic: &str, data: Value) -> u64 {
        self.state
            .publish(topic, data, None)
            .await
            .expect("publish")
            .seq
    }

    /// Open WebSocket connections.
    pub fn live_connections(&self) -> usize {
        self.state.live_connections()
    }

    /// A token signed with [`SECRET`].
    pub fn sign(claims: &Claims) -> String {
        hublink_server::auth::sign(SECRET.as_bytes(), claims).expect("sign")
    }

    /// Stops gracefully: every connection gets `reconnect` (retry_after from
    /// the config) and close 1012; returns once they are gone and the port
    /// is free.
    pub async fn stop(&mut self) {
        self.state.shut_down();
        let deadline = tokio::time::Instant::now() + self.config.shutdown_grace;
        while self.state.live_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(serve) = self.serve.take() {
            serve.abort();
            let _ = serve.await;
        }
    }

    /// Serves again on the same port with the same state: the history and its
    /// epochs survive, as with a persistent history store.
    pub async fn start_again(&mut self) {
        self.state.shutdown_flag().send_replace(false);
        let listener = bind_again(self.addr).await;
        self.serve(listener);
    }

    /// Serves again on the same port with a fresh state: history lost, every
    /// topic gets a new epoch.
    pub async fn start_fresh(&mut self) {
        let state = AppState::new(self.config.clone()).expect("server state");
        self.state = state;
        let listener = bind_again(self.addr).await;
        self.serve(listener);
    }
}

async fn bind_again(addr: SocketAddr) -> TcpListener {
    // SO_REUSEADDR is set by tokio on unix; retry briefly in case the old
    // listener is still being torn down.
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("cannot bind {addr} again");
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(serve) = self.serve.take() {
            serve.abort();
        }
    }
}
