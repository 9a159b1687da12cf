//! Hostile tokens and origins against hublink-server with auth on: missing,
//! malformed, wrongly signed, expired, not yet valid, `alg: none`, another
//! algorithm, a token for another branch asking for that branch's rooms, a
//! wrong origin. None gets in (401 / 403 at the upgrade, `forbidden` for
//! rooms), and a bystander keeps receiving on time throughout.

mod common;
mod hostile_support;

use common::*;
use hostile_support::*;
use hublink_server::auth::Claims;
use serde_json::json;

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A token with any header, signed with HMAC-SHA256 under `secret` or unsigned.
fn forge(header: serde_json::Value, claims: &Claims, sig: &str) -> String {
    format!(
        "{}.{}.{sig}",
        b64url(header.to_string().as_bytes()),
        b64url(serde_json::to_string(claims).unwrap().as_bytes())
    )
}

fn secured() -> hublink_server::Config {
    let mut c = config();
    c.jwt_secret = Some(SECRET.into());
    c.allowed_origins = vec!["https://app.example.com".into()];
    // The bystander connects without a token.
    c.anonymous_endpoints = vec!["ws".into()];
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bad_token_gets_in_and_the_bystander_never_notices() {
    let s = start(secured()).await;
    let by = Bystander::start(&s).await;
    let good = claims("u1", "b1", "operator");
    let valid = s.token(&good);
    let valid_sig = valid.rsplit('.').next().unwrap().to_string();
    let mut expired = good.clone();
    expired.exp = Some(hublink_server::now_ms() / 1000 - 1);
    let mut early = good.clone();
    early.nbf = Some(hublink_server::now_ms() / 1000 + 60);
    let mut admin = good.clone();
    admin.role = Some("admin".into());
    admin.publish = Some(vec!["**".into()]);
    let cases: Vec<(&str, String)> = vec![
        ("malformed", "not.a.jwt".into()),
        ("garbage", "%00%ff".into()),
        ("empty parts", "..".into()),
        (
            "wrongly signed",
            hublink_server::auth::sign(b"not-the-secret", &good).unwrap(),
        ),
        ("expired", s.token(&expired)),
        ("not yet valid", s.token(&early)),
        (
            "alg none",
            forge(json!({"alg":"none","typ":"JWT"}), &admin, ""),
        ),
        (
            "alg None",
            forge(json!({"alg":"None","typ":"JWT"}), &admin, ""),
        ),
        (
            "alg none, signature kept",
            forge(json!({"alg":"none","typ":"JWT"}), &admin, &valid_sig),
        ),
        (
            "alg HS512",
            forge(json!({"alg":"HS512","typ":"JWT"}), &good, &valid_sig),
        ),
        (
            "alg RS256",
            forge(json!({"alg":"RS256","typ":"JWT"}), &good, &valid_sig),
        ),
        ("claims swapped under a valid signature", {
            let mut parts: Vec<String> = valid.split('.').map(String::from).collect();
            parts[1] = b64url(serde_json::to_string(&admin).unwrap().as_bytes());
            parts.join(".")
        }),
        ("huge", "a".repeat(6000)),
    ];
    for endpoint in ["/api/v1/actions", "/api/v1/ws/"] {
        // Missing: 401 on endpoints that need a token.
        assert_eq!(
            Raw::try_connect(s.addr, endpoint, &[]).await.err(),
            Some(401),
            "missing token on {endpoint}"
        );
        for (what, token) in &cases {
            let q = Raw::try_connect(s.addr, &format!("{endpoint}?token={token}"), &[]).await;
            assert_eq!(q.err(), Some(401), "{what} in ?token= on {endpoint}");
            let h = format!("Authorization: Bearer {token}");
            let b = Raw::try_connect(s.addr, endpoint, &[&h]).await;
            assert_eq!(b.err(), Some(401), "{what} as a bearer on {endpoint}");
        }
    }
    // On an anonymous endpoint a presented token is still verified.
    let t = &cases[3].1;
    assert_eq!(
        Raw::try_connect(s.addr, &format!("/ws?token={t}"), &[])
            .await
            .err(),
        Some(401),
        "a bad token is refused even where none is needed"
    );
    // The valid token gets in, and only from an allowed origin.
    assert_eq!(
        Raw::try_connect(
            s.addr,
            &format!("/api/v1/actions?token={valid}"),
            &["Origin: https://evil.example"]
        )
        .await
        .err(),
        Some(403),
        "wrong origin"
    );
    assert_eq!(
        Raw::try_connect(s.addr, &format!("/ws?token={valid}"), &["Origin: null"])
            .await
            .err(),
        Some(403),
        "opaque origin"
    );
    assert!(
        Raw::try_connect(
            s.addr,
            &format!("/api/v1/actions?token={valid}"),
            &["Origin: https://app.example.com"]
        )
        .await
        .is_ok(),
        "the valid token from the allowed origin"
    );
    let m = s.metrics().await;
    assert!(
        metric(&m, "hublink_rejected_connections_auth_total")
            >= 2.0 * (1.0 + 2.0 * cases.len() as f64)
    );
    assert_eq!(
        metric(&m, "hublink_rejected_connections_forbidden_total"),
        2.0
    );
    by.assert_unharmed("bad tokens and origins").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_one_branch_cannot_reach_another_branchs_rooms() {
    let s = start(secured()).await;
    let by = Bystander::start(&s).await;
    // Teach the server that order 42 belongs to branch b2.
    s.state
        .publish_event(
            &["branch:b2".into(), "order:42".into()],
            "order:created",
            json!({"orderId":"42"}),
        )
        .await
        .unwrap();
    let t1 = s.token(&claims("u1", "b1", "operator"));
    let mut a = Raw::connect(s.addr, &format!("/api/v1/actions?token={t1}")).await;
    for room in ["branch:b2", "role:operator:b2", "user:u2", "order:42"] {
        a.send_text(&json!({"action":"subscribe","data":{"room":room}}).to_string())
            .await;
        let e = a.next_json().await;
        assert_eq!(e["code"], "forbidden", "{room}: {e}");
        let r = a.next_json().await;
        assert_eq!(r["success"], false, "{room}: {r}");
    }
    a.send_text(&json!({"action":"subscribeToOrder","data":{"orderId":"42"}}).to_string())
        .await;
    assert_eq!(a.next_json().await["code"], "forbidden");
    assert_eq!(
        a.next_json().await["success"],
        false,
        "subscribeToOrder of b2's order"
    );
    // Its own rooms are fine.
    a.send_text(&json!({"action":"subscribe","data":{"room":"order:7"}}).to_string())
        .await;
    assert_eq!(a.next_json().await["success"], true);
    // The same rule on /ws for `room:` topics.
    let mut w = Raw::connect(s.addr, &format!("/ws?token={t1}")).await;
    w.next_json().await;
    for topic in ["room:branch:b2", "room:order:42", "room:user:u2"] {
        w.send_text(&json!({"type":"subscribe","topic":topic}).to_string())
            .await;
        let e = w.next_json().await;
        assert_eq!(e["code"], "forbidden", "{topic}: {e}");
        assert_eq!(w.next_json().await["success"], false);
    }
    // Anonymous on /ws may not enter rooms at all, nor publish.
    let mut anon = Raw::connect(s.addr, "/ws").await;
    anon.next_json().await;
    anon.send_text(&json!({"type":"subscribe","topic":"room:branch:b1"}).to_string())
        .await;
    assert_eq!(anon.next_json().await["code"], "forbidden");
    anon.next_json().await;
    anon.send_text(&json!({"type":"publish","topic":TOPIC,"data":"spoof"}).to_string())
        .await;
    assert_eq!(anon.next_json().await["code"], "forbidden");
    // Events for b2 never reach the b1 connections.
    s.state
        .publish_event(
            &["branch:b2".into(), "order:42".into()],
            "order:status_changed",
            json!({"orderId":"42"}),
        )
        .await
        .unwrap();
    let end = a.read_to_end(std::time::Duration::from_millis(300)).await;
    assert!(
        end.texts
            .iter()
            .all(|m| m["type"] != "order:status_changed"),
        "{:?}",
        end.texts
    );
    by.assert_unharmed("cross-branch attempts").await;
    s.stop().await;
}
