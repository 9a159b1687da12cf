//! What the JSON endpoints share in reading client messages: `\n` batches of
//! [`Commands`], the field that names each, short renderings of bad values for
//! error messages, and query strings.

use std::collections::HashMap;
use std::future::Future;
use std::ops::ControlFlow;

use serde_json::Value;

use crate::conn::Ctx;

/// A protocol of JSON messages, each naming its command in one field.
pub(crate) trait Commands: Send {
    /// The field that names the command (`type`, or `action`).
    const FIELD: &'static str;

    /// Runs command `name`; `Break` answers nothing more of the frame.
    fn command(
        &mut self,
        ctx: &mut Ctx,
        name: &str,
        msg: &Value,
    ) -> impl Future<Output = ControlFlow<()>> + Send;
}

/// Runs the commands of a text frame in order; a line that is not JSON, or
/// names no command, is answered with an error and skipped.
pub(crate) async fn run_commands<C: Commands>(protocol: &mut C, ctx: &mut Ctx, text: &str) {
    for item in parse_batch(text) {
        let v = match item {
            Ok(v) => v,
            Err(e) => {
                ctx.error("invalid_json", &e);
                continue;
            }
        };
        let name = match message_type(&v, C::FIELD) {
            Ok(name) => name,
            Err(e) => {
                ctx.error("invalid_message", &e);
                continue;
            }
        };
        if protocol.command(ctx, name, &v).await.is_break() {
            return;
        }
    }
}

/// Parses a frame as one JSON value or, failing that, as `\n`-separated values.
/// Lines that are not JSON come back as `Err` with the parser's message.
pub(crate) fn parse_batch(text: &str) -> Vec<Result<Value, String>> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => vec![Ok(v)],
        Err(e) => {
            if !text.contains('\n') {
                return vec![Err(format!("frame is not JSON: {e}"))];
            }
            text.split('\n')
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).map_err(|e| format!("line is not JSON: {e}")))
                .collect()
        }
    }
}

/// The `type` of a client message, or an `invalid_message` description.
pub(crate) fn message_type<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    let Some(obj) = v.as_object() else {
        return Err(format!("message is not a JSON object: {}", short(v)));
    };
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "field {field:?} must be a string, got {}",
            short(other)
        )),
        None => Err(format!("field {field:?} is missing")),
    }
}

/// A short rendering of a value for error messages.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// The query string of a request as a map (values percent-decoded).
pub(crate) fn query_map(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                crate::auth::percent_decode(k),
                crate::auth::percent_decode(v),
            )
        })
        .collect()
}
