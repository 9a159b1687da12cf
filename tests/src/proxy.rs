//! A TCP proxy under the test's control, between a client and a server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Accept connections and keep them open, forward nothing either way (a
    /// silent path: a NAT that lost its mapping, a dead middlebox). Held
    /// bytes flow on when the mode goes back to `Pass`, as TCP retransmits.
    Blackhole,
    /// Reset new connections at once (the server is down); established ones
    /// carry on.
    Refuse,
    /// Forward both ways, each chunk this long after it was read.
    Delay(Duration),
}

#[derive(Default)]
struct Conns {
    tasks: Vec<JoinHandle<()>>,
    accepted: Vec<Instant>,
}

/// A proxy listening on a loopback port, forwarding to `upstream`.
pub struct FaultProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    conns: Arc<Mutex<Conns>>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts in [`Mode::Pass`].
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (mode, _) = watch::channel(Mode::Pass);
        let conns = Arc::new(Mutex::new(Conns::default()));
        let accept = tokio::spawn(accept_loop(listener, upstream, mode.clone(), conns.clone()));
        FaultProxy {
            addr,
            mode,
            conns,
            accept,
        }
    }

    /// `ws://proxy{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Switches the mode; established connections follow at once.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Drops every established connection abruptly: no close frame, the
    /// sockets are reset.
    pub fn drop_all(&self) {
        let mut conns = self.conns.lock().unwrap();
        for task in conns.tasks.drain(..) {
            task.abort();
        }
    }

    /// When each connection was accepted (refused ones included), in order.
    pub fn accepted(&self) -> Vec<Instant> {
        self.conns.lock().unwrap().accepted.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    conns: Arc<Mutex<Conns>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let now = Instant::now();
        let current = *mode.borrow();
        let mut c = conns.lock().unwrap();
        c.accepted.push(now);
        if current == Mode::Refuse {
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        c.tasks.retain(|t| !t.is_finished());
        let rx = mode.subscribe();
        c.tasks.push(tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                let _ = client.set_zero_linger();
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            // Reset, not FIN, when the task is aborted: an abrupt drop.
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::select! {
                _ = pump(cr, sw, rx.clone()) => {}
                _ = pump(sr, cw, rx) => {}
            }
        }));
    }
}

/// Copies `from` to `to` chunk by chunk, obeying the mode.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Do not even read while black-holed: the bytes stay in flight.
        if mode.wait_for(|m| *m != Mode::Blackhole).await.is_err() {
            return;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = mode.changed() => continue,
        };
        let delay = match *mode.borrow() {
            Mode::Delay(d) => Some(d),
            _ => None,
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if mode.wait_for(|m| *m != Mode::Blackhole).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
