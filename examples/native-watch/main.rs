//! Follows one topic of a hublink server, printing typed readings, the
//! connection's state changes and recovery events, until Ctrl-C.
//!
//! ```text
//! hublink-server --demo &
//! cargo run -p hublink --example native-watch -- ws://127.0.0.1:8080/ws machines.CNC-001
//! ```

use hublink::{Client, Event, Recovery};
use serde::Deserialize;

/// A demo machine's sensor reading (unknown fields are ignored).
#[derive(Debug, Deserialize)]
struct Reading {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    status: Option<String>,
}

#[tokio::main]
async fn main() -> hublink::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let topic = args.next().unwrap_or_else(|| "machines.CNC-001".into());

    let builder = Client::builder(url);
    let mut events = builder.events();
    let client = builder.connect()?;
    let mut readings = client.subscribe::<Reading>(&topic)?;

    loop {
        tokio::select! {
            Some(delivery) = readings.next() => match delivery {
                Ok(d) => println!(
                    "{} #{}: temperature {:?}, status {:?}",
                    d.topic, d.seq().unwrap_or(0), d.data.temperature, d.data.status
                ),
                Err(e) => eprintln!("payload did not decode: {e}"),
            },
            Some(event) = events.next() => match event {
                Event::StateChanged(c) => println!("-- {} ({})", c.to.name(), c.reason.name()),
                Event::Subscribed { topic, recovery: Recovery::Lost } => {
                    println!("-- {topic}: missed messages are gone, refetch the state")
                }
                Event::Gap { topic, last, next } => {
                    println!("-- {topic}: gap after #{} before #{}", last.seq, next.seq)
                }
                other => println!("-- {other:?}"),
            },
            _ = tokio::signal::ctrl_c() => break,
            else => break,
        }
    }
    client.close().await;
    Ok(())
}
