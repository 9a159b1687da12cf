//! The floor of `bench/run`'s fan-out (issue #16): what relaying a message to
//! every other connection costs on this machine when nothing else is done. No
//! routing, no topics, no history, no heartbeats, no JSON: each text frame a
//! client sends is framed once, and the same bytes are written to every other
//! socket with a non-blocking `try_write` from the reading task; only what a
//! socket does not take at once waits in that connection's buffer for its
//! writable edge. One thread (`current_thread`), as the servers under test
//! get one core.
//!
//! The WebSocket parts are written here on purpose, not with tungstenite:
//! the point is the least work a relay can do, and a library's per-message
//! framing and buffering is what the floor leaves out. The handshake takes
//! tungstenite's `derive_accept_key`; frames are RFC 6455's (client frames
//! masked, server frames not), without extensions.
//!
//! Usage: floor PORT (bench/run starts it as the `floor` stack).

use std::cell::RefCell;
use std::rc::Rc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// One client: its socket and what it has not taken yet.
struct Conn {
    stream: TcpStream,
    pending: RefCell<Vec<u8>>,
    wake: Notify,
}

type Conns = Rc<RefCell<Vec<Rc<Conn>>>>;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: floor PORT");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the port is free");
        let conns: Conns = Rc::default();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let conns = conns.clone();
            tokio::task::spawn_local(async move {
                if let Ok(stream) = handshake(stream).await {
                    serve(stream, conns).await;
                }
            });
        }
    });
}

/// Reads the upgrade request and answers 101.
async fn handshake(mut stream: TcpStream) -> std::io::Result<TcpStream> {
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || req.len() > 16 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&req);
    let key = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(answer.as_bytes()).await?;
    Ok(stream)
}

/// One connection: its frames relayed to the others; its buffer flushed.
async fn serve(stream: TcpStream, conns: Conns) {
    let me = Rc::new(Conn {
        stream,
        pending: RefCell::new(Vec::new()),
        wake: Notify::new(),
    });
    conns.borrow_mut().push(me.clone());
    let mut inbox: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut buf = vec![0u8; 16 * 1024];
    'conn: loop {
        let flushing = !me.pending.borrow().is_empty();
        tokio::select! {
            r = me.stream.readable() => {
                if r.is_err() {
                    break;
                }
                match me.stream.try_read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => inbox.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => break,
                }
                while let Some((opcode, payload, used)) = client_frame(&inbox) {
                    match opcode {
                        0x1 | 0x2 => relay(&me, &conns, opcode, &payload),
                        0x8 => break 'conn,
                        _ => {}
                    }
                    inbox.drain(..used);
                }
            }
            r = me.stream.writable(), if flushing => {
                if r.is_err() {
                    break;
                }
                let mut pending = me.pending.borrow_mut();
                match me.stream.try_write(&pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            () = me.wake.notified(), if !flushing => {}
        }
    }
    conns.borrow_mut().retain(|c| !Rc::ptr_eq(c, &me));
}

/// One unmasked copy of the frame, written to every other connection.
fn relay(from: &Rc<Conn>, conns: &Conns, opcode: u8, payload: &[u8]) {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= 0xffff => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    for c in conns.borrow().iter() {
        if Rc::ptr_eq(c, from) {
            continue;
        }
        let mut pending = c.pending.borrow_mut();
        if !pending.is_empty() {
            pending.extend_from_slice(&frame);
            continue;
        }
        let written = match c.stream.try_write(&frame) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(_) => continue,
        };
        if written < frame.len() {
            pending.extend_from_slice(&frame[written..]);
            c.wake.notify_one();
        }
    }
}

/// The first complete client frame in `buf`: opcode, unmasked payload, and
/// how many bytes it took.
fn client_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let mask: [u8; 4] = if masked {
        let m = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        m
    } else {
        [0; 4]
    };
    let body = buf.get(at..at + len)?;
    let payload = body
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    Some((opcode, payload, at + len))
}
