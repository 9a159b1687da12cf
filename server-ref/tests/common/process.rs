//! The `hublink-server` binary as its own process, with everything it writes
//! (stdout and stderr: the log, start-up errors) captured for assertions.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr")
}

impl ServerProcess {
    /// Starts `hublink-server --listen <free port> <args>` with `RUST_LOG=debug`
    /// (the most the log ever says), without waiting for it to listen.
    pub fn spawn(args: &[&str]) -> ServerProcess {
        ServerProcess::spawn_env(args, &[])
    }

    /// [`ServerProcess::spawn`] with extra environment variables.
    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let addr = free_addr();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hublink-server"))
            .args(["--listen", &addr.to_string()])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hublink-server");
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for mut pipe in pipes {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }));
        }
        ServerProcess {
            child,
            addr,
            output,
            readers,
        }
    }

    /// [`ServerProcess::spawn`], then waits until it accepts connections.
    pub async fn start(args: &[&str]) -> ServerProcess {
        ServerProcess::start_env(args, &[]).await
    }

    /// [`ServerProcess::start`] with extra environment variables.
    pub async fn start_env(args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let mut p = ServerProcess::spawn_env(args, env);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(p.addr).await.is_ok() {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "hublink-server exited ({status}) before listening:\n{}",
                    p.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "hublink-server did not listen on {} within 10 s:\n{}",
            p.addr,
            p.output()
        );
    }

    /// Everything it wrote so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Its exit status, once it exits within `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.join_readers();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops it with SIGTERM (a graceful shutdown) and returns everything it wrote.
    pub async fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if self.wait_exit(Duration::from_secs(10)).await.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.join_readers();
        }
        self.output()
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
