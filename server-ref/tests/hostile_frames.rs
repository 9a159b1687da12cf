//! Malformed frames against hublink-server: invalid UTF-8, non-JSON, JSON of
//! the wrong shape, deep nesting, a 100 MB length header, binary frames, a
//! fragmented message that never finishes. Each gets the documented answer,
//! and a bystander on the same server keeps receiving on time throughout.

mod common;
mod hostile_support;

use std::time::Duration;

use common::*;
use hostile_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_and_wrong_shapes_get_recoverable_errors_naming_the_problem() {
    let s = start(config()).await;
    let by = Bystander::start(&s).await;
    let mut c = Raw::connect(s.addr, "/ws").await;
    assert_eq!(c.next_json().await["type"], "connected");
    let cases: &[(&str, &str, &str)] = &[
        ("not json at all", "invalid_json", "not JSON"),
        ("{\"type\":\"ping\"", "invalid_json", "not JSON"),
        ("", "invalid_json", "not JSON"),
        ("[1,2,3]", "invalid_message", "not a JSON object"),
        ("\"subscribe\"", "invalid_message", "not a JSON object"),
        ("null", "invalid_message", "not a JSON object"),
        ("{}", "invalid_message", "\"type\" is missing"),
        ("{\"type\":42}", "invalid_message", "must be a string"),
        (
            "{\"type\":\"subscribe\"}",
            "invalid_message",
            "\"topic\" is missing",
        ),
        (
            "{\"type\":\"subscribe\",\"topic\":[1]}",
            "invalid_message",
            "must be a string",
        ),
        (
            "{\"type\":\"subscribe\",\"topic\":\"a\",\"since\":{\"seq\":-1}}",
            "invalid_message",
            "since",
        ),
        (
            "{\"type\":\"subscribe\",\"topic\":\"no spaces\"}",
            "invalid_topic",
            "no spaces",
        ),
        (
            "{\"type\":\"subscribe\",\"topic\":\"\"}",
            "invalid_topic",
            "",
        ),
        (
            "{\"type\":\"publish\",\"topic\":\"a\"}",
            "invalid_message",
            "\"data\" is missing",
        ),
        (
            "{\"type\":\"launch_missiles\"}",
            "unknown_type",
            "launch_missiles",
        ),
        ("{\"type\":\"\\u0000\"}", "unknown_type", ""),
    ];
    for (i, (frame, code, says)) in cases.iter().enumerate() {
        c.send_text(frame).await;
        let e = c.next_json().await;
        assert_eq!(e["type"], "error", "{frame}: {e}");
        assert_eq!(e["code"], *code, "{frame}: {e}");
        assert_eq!(e["recoverable"], true, "{frame}: {e}");
        assert_eq!(e["error_count"], i as u64 + 1, "{frame}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(says),
            "{frame}: {e}"
        );
        if *code == "invalid_topic" || (*code == "invalid_message" && frame.contains("since")) {
            let ack = c.next_json().await;
            assert_eq!(ack["type"], "subscribe_ack", "{frame}: {ack}");
            assert_eq!(ack["success"], false, "{frame}: {ack}");
        }
    }
    // A batch with one bad line: the good lines are served, the bad one named.
    c.send_text("{\"type\":\"ping\"}\nnope\n\n{\"type\":\"get_topics\"}")
        .await;
    assert_eq!(c.next_json().await["type"], "pong");
    let e = c.next_json().await;
    assert_eq!(e["code"], "invalid_json");
    assert!(
        e["message"].as_str().unwrap().contains("line is not JSON"),
        "{e}"
    );
    assert_eq!(c.next_json().await["type"], "topics");
    // The connection still works.
    c.send_text("{\"type\":\"ping\"}").await;
    assert_eq!(c.next_json().await["type"], "pong");
    by.assert_unharmed("bad JSON and wrong shapes").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_errors_close_the_connection_with_1008() {
    let mut cfg = config();
    cfg.max_errors = 20;
    let s = start(cfg).await;
    let by = Bystander::start(&s).await;
    let mut c = Raw::connect(s.addr, "/ws").await;
    c.next_json().await;
    for _ in 0..25 {
        c.send_text("garbage").await;
    }
    let end = c.read_to_end(Duration::from_secs(3)).await;
    assert_eq!(end.close, Some(1008), "{end:?}");
    let errors: Vec<_> = end.texts.iter().filter(|m| m["type"] == "error").collect();
    assert_eq!(
        errors.len(),
        21,
        "20 recoverable errors, then the final one"
    );
    let last = errors.last().unwrap();
    assert_eq!(last["code"], "too_many_errors");
    assert_eq!(last["recoverable"], false);
    by.assert_unharmed("an error storm").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_text_frame_is_answered_and_closed_with_1007() {
    let s = start(config()).await;
    let by = Bystander::start(&s).await;
    let mut c = Raw::connect(s.addr, "/ws").await;
    c.next_json().await;
    c.send_frame(true, 1, b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}")
        .await;
    let end = c.read_to_end(Duration::from_secs(3)).await;
    assert_eq!(end.close, Some(1007), "{end:?}");
    let e = &end.texts[0];
    assert_eq!(e["code"], "invalid_json", "{e}");
    assert_eq!(e["recoverable"], false, "{e}");
    // A UTF-8 sequence cut across fragments is fine...
    let mut ok = Raw::connect(s.addr, "/ws").await;
    ok.next_json().await;
    let text = "{\"type\":\"ping\",\"x\":\"é\"}".as_bytes();
    let cut = text.iter().position(|b| *b == 0xc3).unwrap() + 1;
    ok.send_frame(false, 1, &text[..cut]).await;
    ok.send_frame(true, 0, &text[cut..]).await;
    assert_eq!(ok.next_json().await["type"], "pong");
    by.assert_unharmed("invalid UTF-8").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_deeper_than_the_parser_allows_is_an_error_not_a_crash() {
    let s = start(config()).await;
    let by = Bystander::start(&s).await;
    let mut c = Raw::connect(s.addr, "/ws").await;
    c.next_json().await;
    // 30,000 levels in 60 KB, under the 64 KiB frame limit.
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    c.send_text(&deep).await;
    let e = c.next_json().await;
    assert_eq!(e["code"], "invalid_json", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("recursion limit"),
        "{e}"
    );
    let deep_obj = format!(
        "{{\"type\":\"publish\",\"topic\":\"t\",\"data\":{}1{}}}",
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    c.send_text(&deep_obj).await;
    assert_eq!(c.next_json().await["code"], "invalid_json");
    // Half-open nesting: all openers, no closers.
    c.send_text(&"{\"a\":[".repeat(8_000)).await;
    assert_eq!(c.next_json().await["code"], "invalid_json");
    c.send_text("{\"type\":\"ping\"}").await;
    assert_eq!(c.next_json().await["type"], "pong");
    by.assert_unharmed("deep nesting").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_length_header_is_refused_with_1009_before_any_payload() {
    let s = start(config()).await;
    let by = Bystander::start(&s).await;
    for opcode in [1u8, 2] {
        let mut c = Raw::connect(s.addr, "/ws").await;
        c.next_json().await;
        c.send_raw(&Raw::header(true, opcode, 100 << 20)).await;
        // A few bytes of the announced payload; the rest never comes.
        c.send_raw(b"{\"type\":").await;
        let end = c.read_to_end(Duration::from_secs(3)).await;
        assert_eq!(end.close, Some(1009), "opcode {opcode}: {end:?}");
    }
    // An announced 2^63-byte frame too.
    let mut c = Raw::connect(s.addr, "/ws").await;
    c.next_json().await;
    c.send_raw(&Raw::header(true, 1, u64::MAX >> 1)).await;
    let end = c.read_to_end(Duration::from_secs(3)).await;
    assert!(matches!(end.close, Some(1009) | Some(1002)), "{end:?}");
    assert!(metric_now(&s, "hublink_too_big_closes_total").await >= 2.0);
    by.assert_unharmed("100 MB headers").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_get_binary_frame_errors_and_the_connection_carries_on() {
    let s = start(config()).await;
    let by = Bystander::start(&s).await;
    let mut c = Raw::connect(s.addr, "/ws").await;
    c.next_json().await;
    c.send_frame(true, 2, b"{\"type\":\"ping\"}").await;
    let e = c.next_json().await;
    assert_eq!(e["code"], "binary_frame", "{e}");
    assert_eq!(e["recoverable"], true);
    c.send_frame(true, 2, &[0u8, 159, 146, 150, 255]).await;
    assert_eq!(c.next_json().await["code"], "binary_frame");
    c.send_text("{\"type\":\"ping\"}").await;
    assert_eq!(c.next_json().await["type"], "pong");
    by.assert_unharmed("binary frames").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_message_that_never_finishes_is_closed_by_the_stale_timeout() {
    let s = start(config()).await; // stale timeout 1.5 s
    let by = Bystander::start(&s).await;
    let mut c = Raw::connect(s.addr, "/ws").await;
    c.next_json().await;
    c.send_frame(false, 1, b"{\"type\":\"sub").await;
    c.send_frame(false, 0, b"scribe\",\"topic\"").await;
    // ...and nothing more. Only a finished message counts as liveness.
    let t0 = tokio::time::Instant::now();
    let end = c.read_to_end(Duration::from_secs(5)).await;
    assert_eq!(end.close, Some(4008), "{end:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        t0.elapsed()
    );
    assert!(
        end.texts.is_empty(),
        "no answer to half a message: {:?}",
        end.texts
    );

    // Endless continuation frames, each small: the message limit applies to
    // the sum, so it ends with 1009 instead of growing.
    let mut c = Raw::connect(s.addr, "/ws").await;
    c.next_json().await;
    c.send_frame(false, 1, b"[").await;
    let chunk = vec![b' '; 4096];
    for _ in 0..20 {
        if c.s.try_write(&Raw::frame(false, 0, &chunk)).is_err() {
            break;
        }
    }
    let end = c.read_to_end(Duration::from_secs(3)).await;
    assert_eq!(end.close, Some(1009), "{end:?}");

    // A control frame inside a fragmented message is fine (RFC 6455 5.4),
    // and a fragmented message that does finish is served.
    let mut c = Raw::connect(s.addr, "/ws").await;
    c.next_json().await;
    c.send_frame(false, 1, b"{\"type\"").await;
    c.send_frame(true, 9, b"hi").await;
    c.send_frame(true, 0, b":\"ping\"}").await;
    loop {
        let (op, p) = c.read_frame(Duration::from_secs(3)).await.expect("answer");
        if op == 1 {
            let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
            if v["type"] == "pong" {
                break;
            }
        }
    }
    // Protocol violations: an unmasked frame, a continuation with nothing to
    // continue, a reserved opcode: close 1002, no crash.
    for bad in [
        vec![0x81u8, 0x02, b'{', b'}'],
        Raw::frame(true, 0, b"orphan"),
        Raw::frame(true, 3, b"reserved"),
    ] {
        let mut c = Raw::connect(s.addr, "/ws").await;
        c.next_json().await;
        c.send_raw(&bad).await;
        let end = c.read_to_end(Duration::from_secs(3)).await;
        assert_eq!(end.close, Some(1002), "{bad:?}: {end:?}");
    }
    by.assert_unharmed("unfinished fragments").await;
    let _ = json!(null);
    s.stop().await;
}
