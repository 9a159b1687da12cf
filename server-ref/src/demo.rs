//! `--demo`: simulated feeds that bring every endpoint to life, like the seeds'
//! mock modes. Machines' sensor data and status, power readings, order /
//! machine / operator / dashboard / notification events, the topics dialect's
//! task and event updates, and, for every device someone watches, its
//! `system-info`, `processes`, `history` and `network-interfaces` streams at
//! the documented periods (30 s, 60 s, 30 s, 30 s; `--demo-device-speedup`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{json, Value};

use crate::state::{AppState, DeviceFeeds};
use crate::time::{iso8601, now_ms};

fn jitter(base: f64, spread: f64) -> f64 {
    base + (fastrand::f64() - 0.5) * 2.0 * spread
}

/// A whole number, as the seeds send counts and speeds (`8500`, not `8500.0`).
fn int(x: f64) -> i64 {
    x.round() as i64
}

/// `hh:mm AM`, in UTC: the seed labels history points with
/// `toLocaleTimeString('en-US', {hour: '2-digit', minute: '2-digit'})`.
fn clock_label(ms: u64) -> String {
    let minutes = ms / 60_000 % (24 * 60);
    let (h, m) = (minutes / 60, minutes % 60);
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    format!("{h12:02}:{m:02} {}", if h < 12 { "AM" } else { "PM" })
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Starts the feeds (they run until the runtime stops) and installs the
/// per-device feeds, which run while someone watches the device.
pub(crate) fn start(state: &Arc<AppState>) {
    tokio::spawn(machines(state.clone()));
    tokio::spawn(power(state.clone()));
    tokio::spawn(orders(state.clone()));
    state.set_device_feeds(Arc::new(Devices {
        state: Arc::downgrade(state),
        watched: Mutex::new(HashMap::new()),
    }));
}

/// The demo's own state: the devices someone watches, each with its watchers
/// and its feed. It holds the application state weakly, as the state holds it.
struct Devices {
    state: Weak<AppState>,
    watched: Mutex<HashMap<String, (usize, tokio::task::JoinHandle<()>)>>,
}

impl DeviceFeeds for Devices {
    /// Starts the device's feed for its first watcher.
    fn watched(&self, uuid: &str) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let mut d = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((n, _)) = d.get_mut(uuid) {
            *n += 1;
            return;
        }
        let h = tokio::spawn(device_feed(state, uuid.to_string()));
        d.insert(uuid.to_string(), (1, h));
    }

    /// Stops the device's feed after its last watcher.
    fn unwatched(&self, uuid: &str) {
        let mut d = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((n, _)) = d.get_mut(uuid) {
            *n -= 1;
            if *n == 0 {
                if let Some((_, h)) = d.remove(uuid) {
                    h.abort();
                }
            }
        }
    }

    fn stop(&self) {
        let mut d = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        for (_, (_, h)) in d.drain() {
            h.abort();
        }
    }
}

async fn machines(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.demo_machine_period);
    let states = ["running", "running", "running", "idle", "paused"];
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        for (i, id) in state.config.demo_machines.iter().enumerate() {
            let machine_state = states[(n as usize / 12 + i) % states.len()];
            let running = machine_state == "running";
            let data = json!({
                "machine_id": id,
                "temperature": round(jitter(25.0 + i as f64 * 3.0, 1.5), 1),
                "spindle_speed": if running { int(jitter(8500.0, 400.0)) } else { 0 },
                "timestamp": iso8601(now_ms()),
                "x_pos_mm": round(jitter(100.0, 50.0), 1),
                "y_pos_mm": round(jitter(200.0, 50.0), 1),
                "z_pos_mm": round(jitter(50.0, 10.0), 1),
                "feed_rate_actual": if running { int(jitter(1200.0, 100.0)) } else { 0 },
                "spindle_load_percent": if running { int(jitter(70.0, 10.0)) } else { 0 },
                "machine_state": machine_state,
                "active_program_line": n % 500,
                "total_power_kw": round(if running { jitter(15.0, 2.0) } else { jitter(1.2, 0.2) }, 1),
            });
            let topic = format!("machines.{id}");
            let _ = state
                .publish(&topic, json!({"type": "sensor_data", "data": data}), None)
                .await;
            if n % 12 == 1 {
                let status = json!({"machine_id": id, "status": machine_state, "timestamp": iso8601(now_ms())});
                let _ = state
                    .publish(
                        &topic,
                        json!({"type": "machine_status", "data": status}),
                        None,
                    )
                    .await;
            }
        }
    }
}

async fn power(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.demo_power_period);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        for (i, m) in state.config.demo_power_modules.iter().enumerate() {
            let topic = format!("power.{m}");
            // Now and then the simulated hardware hiccups, as the seed's mock does.
            let data: Value = if n % 600 == 300 + i as u64 {
                json!({"type": "error", "message": "Hardware temporarily unavailable", "recoverable": true})
            } else {
                json!({
                    "wavelength_nm": 1310.0, "unit": "dBm",
                    "ch1_power": round(jitter(-17.85, 0.3), 2),
                    "ch2_power": round(jitter(-21.56, 0.3), 2),
                    "ch3_power": round(jitter(6.94, 0.2), 2),
                    "ch4_power": round(jitter(-60.12, 0.5), 2),
                })
            };
            let _ = state.publish(&topic, data, None).await;
        }
    }
}

async fn orders(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.demo_order_period);
    let branch = state.config.demo_branch.clone();
    let statuses = [
        "pending",
        "in_progress",
        "paused",
        "in_progress",
        "completed",
    ];
    let machines = ["M-01", "M-02", "M-03"];
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let order = format!("ORD-{:04}", 1000 + (n / 5) % 50);
        let machine = machines[(n as usize) % machines.len()];
        let ts = iso8601(now_ms());
        let b = format!("branch:{branch}");
        let (rooms, ty, data) = match n % 8 {
            0 => (
                vec![b.clone(), format!("order:{order}")],
                "order:created",
                json!({"orderId": order, "orderNumber": order, "customerId": "CUST-17", "timestamp": ts}),
            ),
            1 | 3 => {
                let i = (n / 2) as usize % statuses.len();
                let old = statuses[(i + statuses.len() - 1) % statuses.len()];
                (
                    vec![b.clone(), format!("order:{order}")],
                    "order:status_changed",
                    json!({"orderId": order, "orderNumber": order, "oldStatus": old, "newStatus": statuses[i], "timestamp": ts}),
                )
            }
            2 => (
                vec![b.clone(), format!("machine:{machine}")],
                "machine:status_changed",
                json!({"machineId": machine, "oldStatus": "idle", "newStatus": "running"}),
            ),
            4 => (
                vec![b.clone(), format!("machine:{machine}")],
                "machine:order_started",
                json!({"machineId": machine, "orderId": order, "operatorId": "OP-7", "startedAt": ts}),
            ),
            5 => (
                vec![b.clone()],
                "operator:logged_in",
                json!({"operatorId": "OP-7", "machineId": machine, "timestamp": ts}),
            ),
            6 => (
                vec![b.clone()],
                "dashboard:refresh",
                json!({"timestamp": ts}),
            ),
            _ => (
                vec![b.clone()],
                "notification:broadcast",
                json!({"message": format!("Order {order} needs attention"), "type": "info", "priority": "normal"}),
            ),
        };
        let _ = state.publish_event(&rooms, ty, data).await;

        // The topics dialect's feeds.
        let ev = 100 + n % 20;
        let _ = state
            .publish("task_completion_update", json!({"Result": "Event Task Updated", "Events": {
                "uuid": format!("00000000-0000-4000-8000-{:012}", n), "event_number": ev, "event_date": ts,
                "central_id": "ABC123", "priority": 1, "title": "Check sensor", "description": "Inspect the zone sensor",
                "role": "Operator", "status": if n % 2 == 0 { "done" } else { "open" }, "modified_by": "demo",
                "ip_address": "127.0.0.1", "timestamp": ts, "escalation_level": "allarme"}}), None)
            .await;
        let overview = json!({"message": "Overview added successfully", "data": {"event_number": ev, "central_id": "ABC123",
            "type": "fire", "level": "allarme", "incident_level": "high", "timestamp": ts}});
        let _ = state.publish("event_updates", overview.clone(), None).await;
        let _ = state.publish("central_ABC123", overview, None).await;
        let _ = state
            .publish(
                "task_completion_map_update",
                json!({"type": "task_completion_update",
                "data": {"event_number": ev, "info": {"Completed": n % 10, "Total": 10}}}),
                None,
            )
            .await;
    }
}

async fn device_feed(state: Arc<AppState>, uuid: String) {
    let speed = state.config.demo_device_speedup.max(0.001);
    let period = |s: f64| Duration::from_secs_f64(s / speed);
    let mut t30 = tokio::time::interval(period(30.0));
    let mut t60 = tokio::time::interval(period(60.0));
    let mut uptime = 86_400u64;
    loop {
        tokio::select! {
            _ = t30.tick() => {
                uptime += 30;
                let now = now_ms();
                let _ = state.publish(&format!("devices.{uuid}.system-info"), json!({
                    "os": "Ubuntu 22.04.4 LTS", "architecture": "x86_64", "uptime": uptime,
                    "hostname": format!("device-{}", &uuid[..uuid.len().min(8)]),
                    "ipAddress": "192.168.1.42", "macAddress": "02:42:ac:11:00:02"}), None).await;
                let points: Vec<u64> = (0..30u64).rev().map(|i| now - i * 60_000).collect();
                let _ = state.publish(&format!("devices.{uuid}.history"), json!({
                    "cpu": points.iter().map(|&t| json!({"time": clock_label(t), "value": int(jitter(35.0, 15.0))})).collect::<Vec<_>>(),
                    "memory": points.iter().map(|&t| json!({"time": clock_label(t), "used": int(jitter(2048.0, 200.0)), "available": int(jitter(6144.0, 200.0))})).collect::<Vec<_>>(),
                    "network": points.iter().map(|&t| json!({"time": clock_label(t), "download": int(jitter(500.0, 300.0)), "upload": int(jitter(120.0, 80.0))})).collect::<Vec<_>>(),
                }), None).await;
                let _ = state.publish(&format!("devices.{uuid}.network-interfaces"), json!({"interfaces": [
                    {"name": "eth0", "ip4": "192.168.1.42", "mac": "02:42:ac:11:00:02", "operstate": "up", "speed": 1000},
                    {"name": "wlan0", "ip4": null, "mac": "02:42:ac:11:00:03", "operstate": "down", "speed": null}]}), None).await;
            }
            _ = t60.tick() => {
                let _ = state.publish(&format!("devices.{uuid}.processes"), json!({"top_processes": [
                    {"pid": 1201, "name": "node", "cpu": jitter(12.0, 5.0).round(), "mem": 3.1},
                    {"pid": 842, "name": "postgres", "cpu": jitter(6.0, 3.0).round(), "mem": 5.4},
                    {"pid": 1, "name": "systemd", "cpu": 0.1, "mem": 0.2}]}), None).await;
            }
        }
    }
}

/// Prints what `--demo` generated, and where to connect.
pub(crate) fn announce(state: &AppState, addr: std::net::SocketAddr) {
    let creds = &state.demo_credentials;
    println!("hublink-server demo mode on http://{addr}");
    if let Some(s) = &creds.jwt_secret {
        println!("  generated dev JWT secret (HUBLINK_JWT_SECRET): {s}");
    }
    if let Some(t) = &creds.token {
        println!(
            "  demo token (sub demo-user, branch {}, role admin): {t}",
            state.config.demo_branch
        );
        println!("  actions endpoint: ws://{addr}/api/v1/actions?token={t}");
    }
    if let Some(k) = &creds.publish_key {
        println!("  generated publish key (HUBLINK_PUBLISH_KEY): {k}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_labels_are_en_us() {
        assert_eq!(clock_label(0), "12:00 AM");
        assert_eq!(clock_label(1_704_110_400_123), "12:00 PM"); // 2024-01-01T12:00:00Z
        assert_eq!(clock_label(1_704_110_400_000 + 150 * 60_000), "02:30 PM");
        assert_eq!(clock_label(1_704_110_400_000 - 60_000), "11:59 AM");
    }
}
