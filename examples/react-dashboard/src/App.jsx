import { useEffect, useState } from "react";
import { useConnectionState, useHublink, useLatest, useTopic } from "hublink/react";

const MACHINES = ["CNC-001", "CNC-002", "CNC-003"];
const POWER_MODULES = ["1", "2", "3", "4"];
const ORDERS = "room:branch:demo-branch";

/** "Connected / Live Data / Reconnecting (attempt n) / Disconnected". */
function StatusBadge({ live }) {
  const { state, attempt, reason } = useConnectionState();
  const [text, tone] =
    state === "connected"
      ? live
        ? ["Live Data", "live"]
        : ["Connected", "ok"]
      : state === "reconnecting"
        ? [`Reconnecting (attempt ${attempt})`, "warn"]
        : state === "connecting"
          ? ["Connecting…", "warn"]
          : ["Disconnected", "bad"];
  return (
    <span className={`badge ${tone}`} data-testid="status" data-state={state} data-attempt={attempt} title={reason?.name}>
      {text}
    </span>
  );
}

/** Counts every message and every stream discontinuity, straight from the socket callback. */
function useStreamStats() {
  const client = useHublink();
  const [stats, setStats] = useState({ messages: 0, gaps: 0, recovered: 0, lost: 0, lastAt: 0 });
  useEffect(() => {
    const s = { messages: 0, gaps: 0, recovered: 0, lost: 0, lastAt: 0, seqBreaks: 0, lastSeq: {} };
    window.__hublinkStats = s; // read by the browser tests
    const offs = [
      client.on("message", (m) => {
        s.messages++;
        s.lastAt = Date.now();
        const prev = s.lastSeq[m.topic];
        if (prev && prev.epoch === m.epoch && m.seq !== prev.seq + 1) s.seqBreaks++;
        s.lastSeq[m.topic] = { epoch: m.epoch, seq: m.seq };
      }),
      client.on("gap", () => void s.gaps++),
      client.on("subscribed", (e) => {
        if (e.recovery === "recovered") s.recovered++;
        if (e.recovery === "lost") s.lost++;
      }),
    ];
    const timer = setInterval(() => setStats({ ...s }), 250);
    return () => {
      clearInterval(timer);
      offs.forEach((off) => off());
    };
  }, [client]);
  return stats;
}

function Machine({ id }) {
  const [sensor, setSensor] = useState(null);
  const [status, setStatus] = useState(null);
  useTopic(`machines.${id}`, (msg) => {
    if (msg.type === "sensor_data") setSensor(msg.data);
    if (msg.type === "machine_status") setStatus(msg.data.status);
  });
  const state = status ?? sensor?.machine_state ?? "unknown";
  return (
    <div className="card" data-testid={`machine-${id}`}>
      <h3>
        {id} <span className={`pill ${state}`}>{state}</span>
      </h3>
      <dl>
        <dt>Temperature</dt>
        <dd data-testid={`temp-${id}`}>{sensor ? `${sensor.temperature.toFixed(1)} °C` : "—"}</dd>
        <dt>Spindle speed</dt>
        <dd>{sensor ? `${sensor.spindle_speed} rpm` : "—"}</dd>
        <dt>Spindle load</dt>
        <dd>{sensor ? `${sensor.spindle_load_percent} %` : "—"}</dd>
        <dt>Power</dt>
        <dd>{sensor ? `${sensor.total_power_kw} kW` : "—"}</dd>
      </dl>
    </div>
  );
}

function PowerRow({ module }) {
  const reading = useLatest(`power.${module}`);
  const ok = reading && reading.ch1_power !== undefined;
  return (
    <tr data-testid={`power-${module}`}>
      <td>Module {module}</td>
      {[1, 2, 3, 4].map((ch) => (
        <td key={ch}>{ok ? reading[`ch${ch}_power`].toFixed(2) : reading ? "⚠" : "—"}</td>
      ))}
    </tr>
  );
}

function OrderFeed() {
  const [events, setEvents] = useState([]);
  const [refused, setRefused] = useState(null);
  const client = useHublink();
  useEffect(
    () => client.on("subscribe_failed", (e) => e.topic === ORDERS && setRefused(e.error)),
    [client],
  );
  // Every event is appended, even when several arrive in one render batch.
  useTopic(ORDERS, (event, m) => setEvents((list) => [{ seq: m.seq, event }, ...list].slice(0, 12)));
  return (
    <div className="card wide">
      <h3>Order events</h3>
      {refused && <p className="muted">Order events need a token (open the page with ?token=…): {refused}</p>}
      <ul className="feed" data-testid="orders">
        {events.map(({ seq, event }) => (
          <li key={seq}>
            <code>#{seq}</code> <b>{event.type ?? "event"}</b>{" "}
            <span className="muted">{summary(event.data ?? event)}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function summary(data) {
  if (!data || typeof data !== "object") return String(data);
  return Object.entries(data)
    .filter(([k]) => k !== "timestamp")
    .slice(0, 4)
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(" · ");
}

export function App() {
  const stats = useStreamStats();
  const live = Date.now() - stats.lastAt < 3000;
  return (
    <main>
      <header>
        <h1>Shop floor</h1>
        <StatusBadge live={live} />
        <span className="stat">
          messages <b data-testid="messages">{stats.messages}</b>
        </span>
        <span className="stat">
          gaps <b data-testid="gaps">{stats.gaps}</b>
        </span>
        <span className="stat">
          recovered <b data-testid="recovered">{stats.recovered}</b>
        </span>
        <span className="stat">
          reset (refetched) <b data-testid="lost">{stats.lost}</b>
        </span>
      </header>
      <section className="grid">
        {MACHINES.map((id) => (
          <Machine key={id} id={id} />
        ))}
      </section>
      <section className="card wide">
        <h3>Device metrics: optical power (dBm)</h3>
        <table>
          <thead>
            <tr>
              <th />
              <th>ch1</th>
              <th>ch2</th>
              <th>ch3</th>
              <th>ch4</th>
            </tr>
          </thead>
          <tbody>
            {POWER_MODULES.map((m) => (
              <PowerRow key={m} module={m} />
            ))}
          </tbody>
        </table>
      </section>
      <OrderFeed />
    </main>
  );
}
