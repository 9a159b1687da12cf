//! The wasm shell in a JS engine: Node (`NODE_ARGS=--experimental-websocket`)
//! and headless Chromium (`WASM_BINDGEN_USE_BROWSER=1`).

use hublink_core::JsonValue;
use hublink_wasm::json::Js;
use hublink_wasm::{reason_names, state_names, Client};
use js_sys::{Array, Function, Object, Promise, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

fn options(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

/// A client whose events are collected into a JS array.
fn client(url: &str, opts: JsValue) -> (Client, Array) {
    let events = Array::new();
    let sink = events.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        sink.push(&e);
    });
    let client = Client::new(
        url.into(),
        opts,
        f.as_ref().unchecked_ref::<Function>().clone(),
    )
    .unwrap();
    f.forget();
    (client, events)
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        let g = js_sys::global();
        let st: Function = get(&g, "setTimeout").into();
        st.call2(&JsValue::NULL, &resolve, &ms.into()).unwrap();
    });
    JsFuture::from(p).await.unwrap();
}

fn states(events: &Array) -> Vec<(String, String, u32)> {
    events
        .iter()
        .filter(|e| get(e, "type").as_string().as_deref() == Some("state"))
        .map(|e| {
            (
                get(&e, "to").as_string().unwrap(),
                get(&get(&e, "reason"), "name").as_string().unwrap(),
                get(&e, "attempt").as_f64().unwrap() as u32,
            )
        })
        .collect()
}

#[wasm_bindgen_test]
fn json_parse_reads_fields_and_moves_payloads() {
    let mut v = Js::parse(r#"{"type":"message","seq":7,"neg":-1,"f":1.5,"ok":true,"a":["x",1,"y"],"data":{"k":[1,2]}}"#).unwrap();
    assert!(v.is_object());
    assert_eq!(v.get_str("type").as_deref(), Some("message"));
    assert_eq!(v.get_u64("seq"), Some(7));
    assert_eq!(v.get_u64("neg"), None);
    assert_eq!(v.get_u64("f"), None);
    assert_eq!(v.get_f64("f"), Some(1.5));
    assert_eq!(v.get_bool("ok"), Some(true));
    assert_eq!(
        v.get_str_array("a"),
        Some(vec!["x".to_owned(), "y".to_owned()])
    );
    assert_eq!(v.get_str("missing"), None);
    let data = v.take("data").unwrap();
    assert_eq!(data.to_json(), r#"{"k":[1,2]}"#);
    assert!(v.get("data").is_none(), "take removes the field");
    assert!(!Js::parse("[1]").unwrap().is_object());
    assert_eq!(
        Js::parse("3").unwrap().get_str("x"),
        None,
        "fields of a non-object are None"
    );
    assert!(Js::parse("{nope").is_err());
}

#[wasm_bindgen_test]
fn names_match_the_core() {
    let states: Vec<String> = state_names()
        .iter()
        .map(|s| s.as_string().unwrap())
        .collect();
    assert_eq!(
        states,
        ["connecting", "connected", "reconnecting", "disconnected"]
    );
    assert_eq!(reason_names().length(), 11);
}

#[wasm_bindgen_test]
fn errors_are_js_errors_with_a_code() {
    let (c, _) = client("ws://127.0.0.1:9/ws", JsValue::UNDEFINED);
    assert_eq!(c.state(), "disconnected");
    let e = c.subscribe("").unwrap_err();
    assert!(e.is_instance_of::<js_sys::Error>());
    assert_eq!(
        get(&e, "code").as_string().as_deref(),
        Some("invalid_topic")
    );
    let e = c.publish("t", JsValue::from(1)).unwrap_err();
    assert_eq!(get(&e, "code").as_string().as_deref(), Some("closed"));
    let e = Client::new(
        "ws://127.0.0.1:9/".into(),
        options(&[("dialect", "nope".into())]),
        Function::new_no_args(""),
    )
    .err()
    .unwrap();
    assert_eq!(
        get(&e, "code").as_string().as_deref(),
        Some("unknown_dialect")
    );
    let machines = Client::new(
        "ws://127.0.0.1:9/".into(),
        options(&[("dialect", "machines".into())]),
        Function::new_no_args(""),
    )
    .unwrap();
    machines.connect();
    let e = machines.publish("t", JsValue::from(1)).unwrap_err();
    assert_eq!(get(&e, "code").as_string().as_deref(), Some("unsupported"));
    machines.close();
}

#[wasm_bindgen_test]
async fn a_refused_connection_backs_off_and_retries_on_the_timer() {
    // Port 9 (discard) is closed on loopback: every attempt is refused.
    let (c, events) = client(
        "ws://127.0.0.1:9/ws",
        options(&[
            ("backoffInitialMs", 50.into()),
            ("backoffMaxMs", 80.into()),
            ("seed", 3.into()),
        ]),
    );
    c.subscribe("machines.CNC-001").unwrap();
    c.connect();
    assert_eq!(c.state(), "connecting");
    c.publish("orders", JsValue::from(1)).unwrap();
    assert_eq!(c.queued(), 1, "queued while not connected");
    for _ in 0..100 {
        if states(&events)
            .iter()
            .filter(|s| s.0 == "reconnecting")
            .count()
            >= 3
        {
            break;
        }
        sleep(20).await;
    }
    let s = states(&events);
    assert_eq!(s[0], ("connecting".into(), "requested".into(), 0));
    let retries: Vec<_> = s.iter().filter(|s| s.0 == "reconnecting").collect();
    assert!(retries.len() >= 3, "retried on the timer: {s:?}");
    assert!(retries.iter().all(|r| r.1 == "connect_failed"));
    assert_eq!(retries[0].2, 1);
    assert_eq!(retries[1].2, 2, "attempt numbers grow: {s:?}");
    c.close();
    let s = states(&events);
    assert_eq!(s.last().unwrap().0, "disconnected");
    let unsent = events
        .iter()
        .any(|e| get(&e, "type").as_string().as_deref() == Some("unsent"));
    assert!(unsent, "the queued publish is reported unsent on close");
    // The timer is gone: nothing happens after close.
    let n = events.length();
    sleep(200).await;
    assert_eq!(events.length(), n);
}

#[wasm_bindgen_test]
async fn handlers_may_call_back_into_the_client() {
    // A handler that closes the client from inside the event callback must not
    // hit a RefCell borrow panic; the re-entrant drive is folded into the outer one.
    let slot: Rc<RefCell<Option<Client>>> = Rc::default();
    let seen = Array::new();
    let (slot2, seen2) = (slot.clone(), seen.clone());
    let f = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        seen2.push(&e);
        if get(&e, "to").as_string().as_deref() == Some("reconnecting") {
            if let Some(c) = slot2.borrow().as_ref() {
                c.close();
            }
        }
    });
    let c = Client::new(
        "ws://127.0.0.1:9/ws".into(),
        options(&[("backoffInitialMs", 50.into())]),
        f.as_ref().unchecked_ref::<Function>().clone(),
    )
    .unwrap();
    f.forget();
    c.connect();
    *slot.borrow_mut() = Some(c);
    for _ in 0..100 {
        if states(&seen).iter().any(|s| s.0 == "disconnected") {
            break;
        }
        sleep(20).await;
    }
    let s = states(&seen);
    assert_eq!(s.last().unwrap().0, "disconnected", "{s:?}");
    assert_eq!(s.last().unwrap().1, "closed_by_user");
}
