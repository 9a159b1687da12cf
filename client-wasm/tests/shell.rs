//! The wasm binding in a JS engine: Node (`NODE_ARGS=--experimental-websocket`)
//! and headless Chromium (`WASM_BINDGEN_USE_BROWSER=1`). The socket and timer
//! end of the shell is TypeScript and is tested in `pkg/test/`.

use hublink_core::JsonValue;
use hublink_wasm::json::Js;
use hublink_wasm::{admit, refused, Core, Outputs};
use js_sys::{Array, Function, Object, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

/// An `Outputs` that records every output as an array of its fields.
fn recorder() -> (Outputs, Array) {
    let log = Array::new();
    let o = Object::new();
    Reflect::set(&o, &"log".into(), &log).unwrap();
    // Recorded as [name, a, b, c, w, x, y, z, v]: the output's number as its
    // name (hublink_wasm::events::output), for readable assertions.
    let out = Function::new_with_args(
        "k,w,a,b,c,x,y,z,v",
        "const n = ['open','send','close','refused','state','welcome','message','subscribed',\
         'subscribe_failed','unsubscribed','gap','topics','server_error','decode_error','unsent','unknown',\
         'published','publish_failed'];\
         this.log.push([n[k],a,b,c,w,x,y,z,v])",
    );
    Reflect::set(&o, &"out".into(), &out).unwrap();
    (o.unchecked_into(), log)
}

fn core(dialect: Option<&str>) -> (Core, Array) {
    let (o, log) = recorder();
    let nan = f64::NAN;
    let c = Core::new(
        dialect.unwrap_or("hublink"),
        o,
        1.0,
        nan,
        nan,
        nan,
        nan,
        nan,
        nan,
        nan,
    );
    (c, log)
}

/// The kinds of the outputs recorded since the last call, and forgets them.
fn kinds(log: &Array) -> Vec<String> {
    let k = log
        .iter()
        .map(|e| Array::from(&e).get(0).as_string().unwrap())
        .collect();
    log.set_length(0);
    k
}

/// Feeds one frame as the TS shell does: header first, the whole value if asked.
fn frame(c: &Core, text: &str) -> u32 {
    let v = JSON::parse(text).unwrap();
    let s = |k: &str| get(&v, k).as_string();
    let seq = get(&v, "seq").as_f64().unwrap_or(f64::NAN);
    let has_data = !get(&v, "data").is_undefined();
    let bits = c.header(
        0.0,
        text.len() as u32,
        0,
        s("type"),
        s("topic"),
        seq,
        s("epoch"),
        has_data,
    );
    if bits & admit::DECODE != 0 {
        c.value(0.0, v);
    }
    bits
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
fn refused_calls_return_a_code_and_keep_the_message() {
    let (c, log) = core(None);
    // The message of the last `refused` output.
    let error = |log: &Array| -> String {
        let last = log
            .iter()
            .map(|e| Array::from(&e))
            .rfind(|e| e.get(0).as_string().as_deref() == Some("refused"));
        last.expect("a refused output").get(1).as_string().unwrap()
    };
    assert_eq!(c.state(), "disconnected");
    assert_eq!(c.subscribe(0.0, "", "", f64::NAN), refused::INVALID_TOPIC);
    assert_eq!(
        error(&log),
        "invalid topic \"\": a topic name cannot be empty"
    );
    assert_eq!(
        c.publish(0.0, "t", "id-1", JsValue::from(1)),
        refused::CLOSED
    );
    assert!(
        error(&log).contains("closed by the application"),
        "{}",
        error(&log)
    );
    c.connect(0.0);
    assert_eq!(c.subscribe(0.0, "t", "", f64::NAN), 0);
    assert_eq!(c.publish(0.0, "t", "id-1", JsValue::from(1)), 0);
    let (machines, mlog) = core(Some("machines"));
    machines.connect(0.0);
    assert_eq!(
        machines.publish(0.0, "t", "id-1", JsValue::from(1)),
        refused::UNSUPPORTED
    );
    assert_eq!(error(&mlog), "the machines dialect cannot publish");
}

#[wasm_bindgen_test]
fn messages_cross_as_headers_and_control_frames_whole() {
    let (c, log) = core(None);
    assert_eq!(c.subscribe(0.0, "a", "", f64::NAN), 0);
    c.connect(0.0);
    assert!(c.drain() >= 0.0, "a connect timeout is armed");
    let open = Array::from(&log.get(0));
    assert_eq!(open.get(0).as_string().as_deref(), Some("open"));
    assert_eq!(open.get(1).as_string().as_deref(), Some("hublink.v1"));
    c.opened(0.0);
    c.drain();
    assert_eq!(kinds(&log), ["open", "state", "send", "state"]);

    let ack = r#"{"type":"subscribe_ack","topic":"a","success":true,"epoch":"e","seq":0}"#;
    assert_eq!(
        frame(&c, ack),
        admit::DECODE,
        "decided once the value is fed"
    );
    c.drain();
    assert_eq!(kinds(&log), ["subscribed"]);
    let m = |seq: u32| {
        let text = r#"{"type":"message","topic":"a","seq":N,"epoch":"e","data":{"v":1}}"#;
        text.replace('N', &seq.to_string())
    };
    assert_eq!(
        frame(&c, &m(1)),
        admit::DELIVER,
        "nothing to drain: no crossing back"
    );
    assert_eq!(frame(&c, &m(1)), 0, "a duplicate is dropped");
    // The same strings as last time need not cross again.
    let same = c.header(0.0, 60, 1 | 2 | 4, None, None, 2.0, None, true);
    assert_eq!(
        same,
        admit::DELIVER,
        "seq 2 on the remembered type, topic, epoch"
    );
    assert_eq!(
        frame(&c, &m(5)),
        admit::DELIVER | admit::DRAIN,
        "a gap to drain first"
    );
    c.drain();
    let gap = Array::from(&log.get(0));
    assert_eq!(gap.get(0).as_string().as_deref(), Some("gap"));
    assert_eq!(gap.get(5).as_f64(), Some(2.0));
    assert_eq!(gap.get(6).as_f64(), Some(5.0));
    log.set_length(0);

    // Another dialect has no header path: its messages arrive whole.
    let (m, log) = core(Some("machines"));
    m.connect(0.0);
    m.opened(0.0);
    m.drain();
    log.set_length(0);
    assert_eq!(
        frame(&m, r#"{"type":"sensor_data","data":{"t":1}}"#),
        admit::DECODE
    );
    m.drain();
    let msg = Array::from(&log.get(0));
    assert_eq!(msg.get(0).as_string().as_deref(), Some("message"));
    assert_eq!(msg.get(1).as_string().as_deref(), Some("sensor_data"));
    let data = Array::from(&msg.get(8)).get(0);
    assert_eq!(
        get(&data, "t").as_f64(),
        Some(1.0),
        "the payload is the parsed value"
    );
}

#[wasm_bindgen_test]
fn a_publish_carries_its_id_and_its_answer_comes_back_by_it() {
    let (c, log) = core(None);
    c.connect(0.0);
    c.opened(0.0);
    c.drain();
    log.set_length(0);
    assert_eq!(c.publish(0.0, "orders", "p-1", JsValue::from(7)), 0);
    assert_eq!(c.publish(0.0, "admin", "p-2", JsValue::from(8)), 0);
    c.drain();
    let sent: Vec<String> = log
        .iter()
        .map(|e| Array::from(&e).get(1).as_string().unwrap())
        .collect();
    assert_eq!(
        sent,
        [
            r#"{"type":"publish","topic":"orders","id":"p-1","data":7}"#,
            r#"{"type":"publish","topic":"admin","id":"p-2","data":8}"#
        ]
    );
    log.set_length(0);
    frame(
        &c,
        r#"{"type":"publish_ack","id":"p-1","topic":"orders","seq":41,"epoch":"e"}"#,
    );
    frame(
        &c,
        r#"{"type":"error","code":"forbidden","id":"p-2","message":"not yours","recoverable":true}"#,
    );
    c.drain();
    let out: Vec<Array> = log.iter().map(|e| Array::from(&e)).collect();
    assert_eq!(out.len(), 2, "one outcome each");
    // [name, a, b, c, w, x, y, z, v]
    assert_eq!(out[0].get(0).as_string().as_deref(), Some("published"));
    assert_eq!(out[0].get(1).as_string().as_deref(), Some("p-1"));
    assert_eq!(out[0].get(3).as_string().as_deref(), Some("e"));
    assert_eq!(out[0].get(5).as_f64(), Some(41.0));
    assert_eq!(out[1].get(0).as_string().as_deref(), Some("publish_failed"));
    assert_eq!(out[1].get(1).as_string().as_deref(), Some("p-2"));
    assert_eq!(out[1].get(3).as_string().as_deref(), Some("forbidden"));
    assert_eq!(
        out[1].get(4).as_f64(),
        Some(0.0),
        "refused, nothing published"
    );
    assert_eq!(out[1].get(8).as_string().as_deref(), Some("not yours"));
}

#[wasm_bindgen_test]
fn outputs_may_call_back_into_the_core() {
    // An `out` that closes the core from inside drain must not hit a RefCell
    // borrow panic; what it queues is drained by the same loop, in order.
    let log = Array::new();
    let o = Object::new();
    Reflect::set(&o, &"log".into(), &log).unwrap();
    // `state` outputs as "state:<to>"; closing (input 9) from inside the
    // first one, as a handler may.
    let out = Function::new_with_args(
        "k,w",
        "const to = k === 4 ? ['connecting','connected','reconnecting','disconnected'][(w >> 4) & 15] : '';\
         this.log.push(['open','send','close','refused','state'][k] + ':' + to);\
         if (to === 'connecting') this.core.input(9, 0, NaN, '', '', undefined);",
    );
    Reflect::set(&o, &"out".into(), &out).unwrap();
    let nan = f64::NAN;
    let c = Core::new(
        "hublink",
        o.clone().unchecked_into(),
        1.0,
        nan,
        nan,
        nan,
        nan,
        nan,
        nan,
        nan,
    );
    // The JS side holds the wasm object as TS does.
    let js_core: JsValue = c.into();
    Reflect::set(&o, &"core".into(), &js_core).unwrap();
    let input: Function = get(&js_core, "input").into();
    let args = Array::of5(
        &8.into(),
        &0.into(),
        &f64::NAN.into(),
        &"".into(),
        &"".into(),
    );
    args.push(&JsValue::UNDEFINED);
    input.apply(&js_core, &args).unwrap();
    let drain: Function = get(&js_core, "drain").into();
    drain.call0(&js_core).unwrap();
    let seen: Vec<String> = log.iter().map(|s| s.as_string().unwrap()).collect();
    assert_eq!(
        seen,
        ["open:", "state:connecting", "close:", "state:disconnected"]
    );
}

#[wasm_bindgen_test]
fn the_topics_answer_is_an_array_of_the_topics() {
    let (c, log) = core(None);
    c.connect(0.0);
    c.opened(0.0);
    assert_eq!(c.request_topics(0.0), 0);
    c.drain();
    assert_eq!(kinds(&log), ["open", "send", "state", "state"]);
    frame(
        &c,
        r#"{"type":"topics","topics":["orders","machines.CNC-001"]}"#,
    );
    c.drain();
    let topics = Array::from(&log.get(0));
    assert_eq!(topics.get(0).as_string().as_deref(), Some("topics"));
    let list = topics.get(8);
    assert!(Array::is_array(&list), "{list:?}");
    let list: Vec<_> = Array::from(&list).iter().map(|t| t.as_string()).collect();
    assert_eq!(
        list,
        [
            Some("orders".to_owned()),
            Some("machines.CNC-001".to_owned())
        ]
    );
}
