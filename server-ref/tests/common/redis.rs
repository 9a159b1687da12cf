//! A throwaway `redis-server` on a free loopback port, killed on drop.
//! Without `redis-server` on the PATH, [`RedisServer::start`] returns `None`
//! after printing why (tests then skip), or panics when `CI=true`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    /// The TLS port of one started with [`RedisServer::start_tls`].
    pub tls_port: Option<u16>,
    child: Option<Child>,
    /// `redis-server` arguments before the standard ones (a config file) and
    /// after them, kept for [`RedisServer::restart`].
    leading: Vec<String>,
    extra: Vec<String>,
    /// Files this server writes (Cluster's nodes file), removed on drop.
    files: Vec<std::path::PathBuf>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts one, or `None` (printed) when `redis-server` is not installed.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// Starts one with extra arguments (`--requirepass pw`...), or `None`.
    pub fn start_with(extra: &[&str]) -> Option<RedisServer> {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        RedisServer::start_kind(|_| Kind {
            extra,
            ..Kind::default()
        })
    }

    /// A node started with `--cluster-enabled yes` and no slots assigned:
    /// it answers `INFO` with `cluster_enabled:1` and every key command with
    /// `CLUSTERDOWN`, as a node of a Redis Cluster does for keys it does not own.
    pub fn start_cluster_node() -> Option<RedisServer> {
        RedisServer::start_kind(Kind::cluster_node)
    }

    /// A Redis Sentinel (`redis-server <file> --sentinel`) monitoring nothing:
    /// it answers `PING` and `SUBSCRIBE`, and `unknown command` to the rest.
    pub fn start_sentinel() -> Option<RedisServer> {
        RedisServer::start_kind(|port| {
            let conf = std::env::temp_dir().join(format!(
                "hublink-test-sentinel-{}-{port}.conf",
                std::process::id()
            ));
            std::fs::write(&conf, "").expect("write the sentinel's config file");
            Kind {
                leading: vec![conf.to_string_lossy().into_owned(), "--sentinel".into()],
                files: vec![conf],
                ..Kind::default()
            }
        })
    }

    /// One that also serves TLS on [`RedisServer::tls_port`] with the
    /// certificate `cert`/`key` (PEM files); clients need no certificate.
    /// The plain port stays open for the harness's PING.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Option<RedisServer> {
        RedisServer::start_kind(|_| {
            let tls_port = free_port();
            Kind {
                extra: vec![
                    "--tls-port".into(),
                    tls_port.to_string(),
                    "--tls-cert-file".into(),
                    cert.to_string_lossy().into_owned(),
                    "--tls-key-file".into(),
                    key.to_string_lossy().into_owned(),
                    "--tls-auth-clients".into(),
                    "no".into(),
                ],
                tls_port: Some(tls_port),
                ..Kind::default()
            }
        })
    }

    /// Stops it and starts a Redis Cluster node on the same port.
    pub fn restart_as_cluster_node(&mut self) {
        self.restart_as(Kind::cluster_node(self.port));
    }

    /// Stops it and starts a plain Redis (with `extra`) on the same port.
    pub fn restart_as_standalone(&mut self, extra: &[&str]) {
        self.restart_as(Kind {
            extra: extra.iter().map(|a| a.to_string()).collect(),
            ..Kind::default()
        });
    }

    fn restart_as(&mut self, kind: Kind) {
        self.kill();
        self.leading = kind.leading;
        self.extra = kind.extra;
        self.files.extend(kind.files);
        self.spawn();
    }

    fn start_kind(kind: impl FnOnce(u16) -> Kind) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            let msg = "redis-server is not installed (scripts/setup installs it): skipping the Redis tests";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}, which CI=true does not allow");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        let port = free_port();
        let kind = kind(port);
        let mut s = RedisServer {
            port,
            tls_port: kind.tls_port,
            child: None,
            leading: kind.leading,
            extra: kind.extra,
            files: kind.files,
        };
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.leading)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args([
                "--loglevel",
                "warning",
                "--dir",
                &std::env::temp_dir().to_string_lossy(),
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server on port {} did not answer PING within 5 s",
            self.port
        );
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        // With `--requirepass` the answer is `-NOAUTH ...`: up all the same.
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok()
            && s.read_exact(&mut buf).is_ok()
            && (&buf == b"+PONG\r\n" || buf.starts_with(b"-NOAUTH"))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL): every connection drops, the data is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes it (SIGSTOP): its connections stay open and its port accepts
    /// new ones, but nothing is read or answered until [`RedisServer::resume`];
    /// commands sent meanwhile wait in its sockets and run then.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a [`RedisServer::pause`]d one run on (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("redis-server is running");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} redis-server: {status}");
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A plain client for assertions.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("redis client")
    }
}

/// How a [`RedisServer`] is started.
#[derive(Default)]
struct Kind {
    leading: Vec<String>,
    extra: Vec<String>,
    files: Vec<std::path::PathBuf>,
    tls_port: Option<u16>,
}

impl Kind {
    fn cluster_node(port: u16) -> Kind {
        let nodes = std::env::temp_dir().join(format!(
            "hublink-test-nodes-{}-{port}.conf",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&nodes);
        Kind {
            extra: vec![
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                nodes.to_string_lossy().into_owned(),
            ],
            files: vec![nodes],
            ..Kind::default()
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}
