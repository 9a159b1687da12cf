//! The HTTP publish API, for backends that inject events (like the serverless
//! backend's `broadcastEvent`). `Authorization: Bearer <--publish-key>`.
//!
//! `POST /api/publish` takes one message, `POST /api/publish/batch` takes
//! `{"messages":[...]}` or a bare array, validated as a whole before any is
//! published. A message is either
//! - `{"topic":"machines.CNC-001","data":{...}}`, or
//! - `{"rooms":["branch:b1","order:42"],"type":"order:status_changed","data":{...}}`
//!   (`"room":"..."` for one room): one event to several rooms.
//!
//! A topic message may carry an idempotency key: the `Idempotency-Key` header
//! (single form) or an `"id"` per message (batch). A key the topic saw within
//! `--dedup-window` is answered with the first publish's `seq` and `epoch`
//! (200, the `id` echoed) and publishes nothing. A failure says in `code`
//! whether nothing was published (`refused`) or the broker did not answer
//! (`unknown`: it may have been; a retry with the same keys is safe), and
//! lists what the batch published before it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::broker::Keyed;
use crate::published::Published;
use crate::state::AppState;
use crate::topic::validate_topic;

enum Item {
    /// Topic, data, idempotency key.
    Topic(String, Value, Option<String>),
    Event(Vec<String>, String, Value),
}

/// Longest idempotency key accepted.
const MAX_ID_LEN: usize = 128;

fn idempotency_key(v: Option<&str>) -> Result<Option<String>, String> {
    match v {
        None => Ok(None),
        Some(k) if !k.is_empty() && k.len() <= MAX_ID_LEN => Ok(Some(k.to_string())),
        Some(_) => Err(format!(
            "an idempotency key must be 1 to {MAX_ID_LEN} bytes"
        )),
    }
}

fn reply(status: StatusCode, v: Value) -> Response {
    (status, Json(v)).into_response()
}

fn check_key(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(key) = &state.publish_key else {
        return Err(Box::new(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the publish API is disabled: start the server with --publish-key"}),
        )));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-hublink-key").and_then(|h| h.to_str().ok()));
    match given {
        Some(g) if constant_eq(g.trim().as_bytes(), key.as_bytes()) => Ok(()),
        Some(_) => Err(Box::new(reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "wrong publish key"}),
        ))),
        None => Err(Box::new(reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing publish key: send Authorization: Bearer <key>"}),
        ))),
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_item(state: &AppState, v: &Value) -> Result<Item, String> {
    let max = state.config.max_topic_len;
    let obj = v.as_object().ok_or("a message must be a JSON object")?;
    let data = obj
        .get("data")
        .cloned()
        .ok_or("field \"data\" is missing")?;
    let id = match obj.get("id") {
        None => None,
        Some(Value::String(k)) => idempotency_key(Some(k))?,
        Some(_) => return Err("field \"id\" must be a string".into()),
    };
    if let Some(t) = obj.get("topic") {
        let t = t.as_str().ok_or("field \"topic\" must be a string")?;
        validate_topic(t, max).map_err(|e| e.to_string())?;
        return Ok(Item::Topic(t.to_string(), data, id));
    }
    if id.is_some() {
        return Err("an idempotency key (\"id\") applies to a topic message, not to rooms".into());
    }
    let rooms: Vec<String> = match (obj.get("rooms"), obj.get("room")) {
        (Some(Value::Array(a)), _) => a
            .iter()
            .map(|r| {
                r.as_str()
                    .map(str::to_string)
                    .ok_or("every room must be a string")
            })
            .collect::<Result<_, _>>()?,
        (Some(_), _) => return Err("field \"rooms\" must be an array of strings".into()),
        (None, Some(Value::String(r))) => vec![r.clone()],
        (None, Some(_)) => return Err("field \"room\" must be a string".into()),
        (None, None) => return Err("a message needs \"topic\", \"room\" or \"rooms\"".into()),
    };
    if rooms.is_empty() {
        return Err("field \"rooms\" is empty".into());
    }
    for r in &rooms {
        validate_topic(&format!("room:{r}"), max).map_err(|e| e.to_string())?;
    }
    let ty = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or("an event to rooms needs a string \"type\", like \"order:status_changed\"")?;
    Ok(Item::Event(rooms, ty.to_string(), data))
}

/// Why publishing stopped, with what was published before.
struct Failed {
    error: crate::Error,
    published: Vec<Value>,
}

async fn publish_items(state: &AppState, items: Vec<Item>) -> Result<Vec<Value>, Failed> {
    let mut out = Vec::new();
    for item in items {
        let r = match item {
            Item::Topic(t, d, Some(id)) => match state.publish_keyed(&t, d, &id).await {
                Ok(Keyed::New(p)) => Ok(vec![
                    json!({"id": id, "topic": &*p.topic, "seq": p.seq, "epoch": &*p.epoch}),
                ]),
                Ok(Keyed::Repeat(first)) => Ok(vec![
                    json!({"id": id, "topic": t, "seq": first.seq, "epoch": &*first.epoch}),
                ]),
                Err(e) => Err(e),
            },
            Item::Topic(t, d, None) => state.publish(&t, d, None).await.map(|p| vec![entry(&p)]),
            Item::Event(rooms, ty, d) => state
                .publish_event(&rooms, &ty, d)
                .await
                .map(|ps| ps.iter().map(|p| entry(p)).collect()),
        };
        match r {
            Ok(entries) => out.extend(entries),
            Err(error) => {
                return Err(Failed {
                    error,
                    published: out,
                })
            }
        }
    }
    Ok(out)
}

fn entry(p: &Published) -> Value {
    json!({"topic": &*p.topic, "seq": p.seq, "epoch": &*p.epoch})
}

/// The publish key checked, then the body parsed as JSON; or the answer that
/// says which of the two failed.
fn authorized_body(
    state: &AppState,
    headers: &HeaderMap,
    body: &str,
) -> Result<Value, Box<Response>> {
    check_key(state, headers)?;
    serde_json::from_str(body).map_err(|e| {
        Box::new(reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("body is not JSON: {e}")}),
        ))
    })
}

/// `POST /api/publish`.
pub(crate) async fn publish(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    answer(&state, &headers, &body, parse_one, true).await
}

/// `POST /api/publish/batch`.
pub(crate) async fn batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    answer(&state, &headers, &body, parse_list, false).await
}

/// What a body that does not parse is answered with (400).
type Bad = Value;

/// How a body becomes messages: [`parse_one`] or [`parse_list`].
type Parse = fn(&AppState, &Value) -> Result<Vec<Item>, Bad>;

fn parse_one(state: &AppState, v: &Value) -> Result<Vec<Item>, Bad> {
    parse_item(state, v)
        .map(|item| vec![item])
        .map_err(|e| json!({"error": e}))
}

/// `{"messages":[...]}` or a bare array, every message valid.
fn parse_list(state: &AppState, v: &Value) -> Result<Vec<Item>, Bad> {
    let list = v
        .as_array()
        .or_else(|| v.get("messages").and_then(Value::as_array))
        .ok_or_else(|| json!({"error": "expected {\"messages\": [...]} or an array"}))?;
    let items = list.iter().enumerate().map(|(i, m)| {
        parse_item(state, m).map_err(|e| json!({"error": format!("message {i}: {e}"), "index": i}))
    });
    items.collect()
}

/// The key checked, the body parsed by `parse`, then every message published.
async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    body: &str,
    parse: Parse,
    single: bool,
) -> Response {
    let v = match authorized_body(state, headers, body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut items = match parse(state, &v) {
        Ok(items) => items,
        Err(bad) => return reply(StatusCode::BAD_REQUEST, bad),
    };
    if let Some(header) = headers.get("idempotency-key") {
        let key = match idempotency_key(header.to_str().ok().map(str::trim)) {
            Ok(key) => key,
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("Idempotency-Key: {e}")}),
                )
            }
        };
        // The single form's key; the batch form keys each message with "id".
        match (single, items.as_mut_slice()) {
            (true, [Item::Topic(_, _, id @ None)]) => *id = key,
            _ => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "Idempotency-Key applies to one topic message (POST /api/publish); in a batch, give each message an \"id\""}),
                )
            }
        }
    }
    match publish_items(state, items).await {
        Ok(p) => reply(StatusCode::OK, json!({"published": p})),
        Err(Failed { error, published }) => {
            let code = match error {
                crate::Error::PublishUnknown(_) => "unknown",
                _ => "refused",
            };
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": error.to_string(), "code": code, "published": published}),
            )
        }
    }
}
