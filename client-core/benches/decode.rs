//! Decoding a realistic `message` frame (~240 bytes) into a typed struct: what
//! every delivered message costs the native client. `message_frame_to_typed_struct`
//! is the native shell's path: the frame's header read by [`RawFrame`], decided
//! by the state machine (`handle_header`), the payload deserialised into
//! `SensorReading` from its raw text. `message_frame_via_value` is the
//! whole-value path (`handle_text`, a `serde_json::Value`, then the type from
//! it) that control frames and the seed dialects take. The baseline is a bare
//! `serde_json` typed parse of the same frame.

use criterion::{black_box, criterion_main, Criterion, Throughput};
use hublink_core::raw::RawFrame;
use hublink_core::{Admit, Config, Connection, DialectKind, Event, Transmit};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct SensorReading {
    machine_id: String,
    temperature: f64,
    spindle_speed: u32,
    spindle_load_percent: f64,
    machine_state: String,
    total_power_kw: f64,
}

fn frame(seq: u64) -> String {
    format!(
        r#"{{"type":"message","topic":"machines.CNC-001","seq":{seq},"epoch":"k2x9q","data":{{"machine_id":"CNC-001","temperature":25.5,"spindle_speed":8500,"spindle_load_percent":75.0,"machine_state":"running","total_power_kw":15.2}},"timestamp":1763769600456}}"#
    )
}

fn connected() -> Connection<serde_json::Value> {
    let mut conn = Connection::new(Config::default(), DialectKind::Hublink.build());
    conn.subscribe(0, "machines.CNC-001").unwrap();
    conn.connect(0);
    conn.handle_open(1);
    while conn.poll_transmit().is_some() {}
    while conn.poll_event().is_some() {}
    conn
}

fn decode(c: &mut Criterion) {
    let sample = frame(1);
    println!("frame size: {} bytes", sample.len());
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));

    // Frames pre-built so the loop measures decoding, not formatting.
    let frames: Vec<String> = (1..=100_000).map(frame).collect();
    group.bench_function("message_frame_to_typed_struct", |b| {
        let mut conn = connected();
        let mut i = 0usize;
        b.iter(|| {
            if i == frames.len() {
                conn = connected();
                i = 0;
            }
            let text = &frames[i];
            i += 1;
            let frame = RawFrame::parse(text).expect("a message frame");
            match conn.handle_header(2, text.len(), &frame.header()) {
                Admit::Deliver => {}
                other => panic!("expected delivery, got {other:?}"),
            }
            assert!(!conn.has_output(), "nothing to drain for the next message");
            let data = frame.data.expect("a payload").get();
            black_box(serde_json::from_str::<SensorReading>(data).unwrap());
        })
    });

    group.bench_function("message_frame_via_value", |b| {
        let mut conn = connected();
        let mut i = 0usize;
        b.iter(|| {
            if i == frames.len() {
                conn = connected();
                i = 0;
            }
            conn.handle_text(2, &frames[i]);
            i += 1;
            while let Some(Transmit::Send(_)) = conn.poll_transmit() {}
            match conn.poll_event() {
                Some(Event::Message(m)) => black_box(m.decode::<SensorReading>().unwrap()),
                other => panic!("expected a message, got {other:?}"),
            };
        })
    });

    group.bench_function("serde_json_direct_baseline", |b| {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Frame {
            topic: String,
            seq: u64,
            epoch: String,
            data: SensorReading,
            timestamp: u64,
        }
        b.iter(|| black_box(serde_json::from_str::<Frame>(black_box(&sample)).unwrap()))
    });
    group.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::decode);
}
use group::benches;
criterion_main!(benches);
