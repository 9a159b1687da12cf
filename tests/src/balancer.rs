//! A load balancer in front of several hublink-server nodes, as users run
//! them: each new connection goes to the first node in the list that accepts
//! it; a node that is down is skipped. The test can drop every connection to
//! one node abruptly (reset, no close frame), as when that node crashes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Open forwarders, with the index of the node each one goes to.
type Forwarders = Arc<Mutex<Vec<(usize, JoinHandle<()>)>>>;

/// A listening balancer; connections are forwarded until either side ends.
pub struct Balancer {
    /// Where clients connect.
    pub addr: SocketAddr,
    conns: Forwarders,
    accept: JoinHandle<()>,
}

impl Balancer {
    /// Listens on a loopback port in front of `nodes`, in order of preference.
    pub async fn start(nodes: Vec<SocketAddr>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let conns: Forwarders = Arc::default();
        let accept = tokio::spawn(accept_loop(listener, nodes, conns.clone()));
        Balancer {
            addr,
            conns,
            accept,
        }
    }

    /// `ws://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Resets every connection forwarded to node `index`, as if it crashed.
    pub fn drop_node(&self, index: usize) {
        let mut conns = self.conns.lock().unwrap();
        conns.retain(|(node, task)| {
            if *node == index {
                task.abort();
            }
            *node != index && !task.is_finished()
        });
    }

    /// Resets every connection, to every node.
    pub fn drop_all(&self) {
        for (_, task) in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_all();
    }
}

async fn accept_loop(listener: TcpListener, nodes: Vec<SocketAddr>, conns: Forwarders) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let mut chosen = None;
        for (index, node) in nodes.iter().enumerate() {
            if let Ok(server) = TcpStream::connect(node).await {
                chosen = Some((index, server));
                break;
            }
        }
        let _ = client.set_zero_linger();
        let Some((index, mut server)) = chosen else {
            continue; // every node is down: the client sees a reset
        };
        // Reset, not FIN, when the task is aborted: an abrupt drop.
        let _ = server.set_zero_linger();
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let task = tokio::spawn(async move {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
        let mut conns = conns.lock().unwrap();
        conns.retain(|(_, t)| !t.is_finished());
        conns.push((index, task));
    }
}
