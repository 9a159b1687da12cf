import { memo, useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { HublinkProvider, useConnectionState, useHublink, useLatest, useTopic } from "hublink/react";
import { LineChart, Sparkline } from "./charts.jsx";
import { useRings } from "./series.js";

const MACHINES = ["CNC-001", "CNC-002", "CNC-003"];
const POWER_MODULES = ["1", "2", "3", "4"];
const CHANNELS = ["ch1", "ch2", "ch3", "ch4"];
const ORDERS = "room:branch:demo-branch";
/** Readings kept per live chart: 30 s of the demo's 500 ms feeds. */
const KEEP = 60;

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

/**
 * This tab's part in shared mode: its role and how many tabs share the
 * connection. A client without shared mode is a tab of its own ("solo", 1).
 */
function useSharing() {
  const client = useHublink();
  const subscribe = useCallback((onChange) => client.on("sharing", onChange), [client]);
  // One string, so the snapshot compares equal until either part changes.
  const get = useCallback(() => `${client.role ?? "solo"} ${client.tabs ?? 1}`, [client]);
  const [role, tabs] = useSyncExternalStore(subscribe, get, () => "solo 1").split(" ");
  return { role, tabs: Number(tabs) };
}

/** Who holds the connection, from this tab's point of view. */
const LEADS = {
  worker: "a shared worker",
  leader: "this tab",
  follower: "another tab",
  solo: "this tab (not shared)",
};

/** Why the state last changed, in words. */
function describeReason(r) {
  if (!r) return "—";
  switch (r.name) {
    case "opened":
      return "opened";
    case "closed":
      return `closed (${r.code})`;
    case "connect_failed":
      return "could not connect";
    case "heartbeat_timeout":
      return `silent for ${Math.round(r.silentMs / 1000)} s`;
    case "server_reconnect":
      return "server asked to reconnect";
    case "auth_rejected":
    case "forbidden":
      return `${r.name.replace("_", " ")} (${r.code})`;
    default:
      return r.name.replaceAll("_", " ");
  }
}

/** Seconds left until `retryInMs` after the status it came with, counting down. */
function Countdown({ status }) {
  const until = useMemo(() => Date.now() + status.retryInMs, [status]);
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 100);
    return () => clearInterval(timer);
  }, [until]);
  return <small> · next in {(Math.max(0, until - now) / 1000).toFixed(1)} s</small>;
}

function ConnectionPanel() {
  const status = useConnectionState();
  const { state, attempt, reason, retryInMs } = status;
  const { role, tabs } = useSharing();
  return (
    <section className="card conn" aria-label="Connection" data-testid="connection">
      <div>
        <span>State</span>
        <b className={`state ${state}`} data-testid="conn-state">
          {state}
        </b>
      </div>
      <div>
        <span>Attempt</span>
        <b data-testid="conn-attempt">
          {attempt}
          {retryInMs != null && <Countdown status={status} />}
        </b>
      </div>
      <div>
        <span>Reason</span>
        <b data-testid="conn-reason" title={reason?.message}>
          {describeReason(reason)}
        </b>
      </div>
      <div>
        <span>Connection held by</span>
        <b data-testid="conn-role" data-role={role}>
          {LEADS[role] ?? role}
        </b>
      </div>
      <div>
        <span>Tabs sharing it</span>
        <b data-testid="conn-tabs">{tabs}</b>
      </div>
    </section>
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

/** The header re-renders four times a second with the counters; nothing else does with it. */
function Header() {
  const stats = useStreamStats();
  const live = Date.now() - stats.lastAt < 3000;
  return (
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
  );
}

const range = (values, digits = 0) =>
  values.length ? `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}` : "";

/**
 * One machine. Its topic carries two kinds of message: `sensor_data` every
 * tick and `machine_status` now and then. Each is read for what it has: the
 * state follows whichever came last, the readings only sensor data.
 */
const Machine = memo(function Machine({ id }) {
  const [rings, push] = useRings(["temp", "load"], KEEP);
  const last = useRef({ sensor: null, state: null });
  useTopic(`machines.${id}`, (msg) => {
    if (msg.type === "sensor_data") {
      last.current.sensor = msg.data;
      last.current.state = msg.data.machine_state;
      push({ temp: msg.data.temperature, load: msg.data.spindle_load_percent });
    } else if (msg.type === "machine_status") {
      last.current.state = msg.data.status;
      push({});
    }
  });
  const { sensor } = last.current;
  const state = last.current.state ?? "unknown";
  const temps = rings.temp.toArray();
  const loads = rings.load.toArray();
  return (
    <div className="card machine" data-testid={`machine-${id}`}>
      <h3>
        {id} <span className={`pill ${state}`}>{state}</span>
      </h3>
      <div className="metric">
        <span className="label">Temperature</span>
        <span className="value" data-testid={`temp-${id}`}>
          {sensor ? `${sensor.temperature.toFixed(1)} °C` : "—"}
        </span>
        <Sparkline values={temps} capacity={KEEP} minSpan={4} color="#ea580c" label={`Temperature, last ${temps.length} readings`} testId={`temp-chart-${id}`} />
        <span className="range">{range(temps, 1)}</span>
      </div>
      <div className="metric">
        <span className="label">Spindle load</span>
        <span className="value" data-testid={`load-${id}`}>
          {sensor ? `${sensor.spindle_load_percent} %` : "—"}
        </span>
        <Sparkline values={loads} capacity={KEEP} min={0} max={100} color="#2563eb" label={`Spindle load, last ${loads.length} readings`} testId={`load-chart-${id}`} />
        <span className="range">0–100</span>
      </div>
      <p className="facts">
        {sensor ? `${sensor.spindle_speed} rpm · ${sensor.total_power_kw} kW · line ${sensor.active_program_line}` : "\u00a0"}
      </p>
    </div>
  );
});

/** One optical module: each channel's reading and its last 30 s. */
const PowerModule = memo(function PowerModule({ module }) {
  const [rings, push] = useRings(CHANNELS, KEEP);
  const fault = useRef(null);
  useTopic(`power.${module}`, (r) => {
    if (r.ch1_power === undefined) {
      fault.current = r.message ?? "no reading";
      push({});
    } else {
      fault.current = null;
      push(Object.fromEntries(CHANNELS.map((c) => [c, r[`${c}_power`]])));
    }
  });
  return (
    <tr data-testid={`power-${module}`}>
      <th scope="row">
        Module {module}
        {fault.current && (
          <span className="fault" title={fault.current}>
            {" "}
            ⚠
          </span>
        )}
      </th>
      {CHANNELS.map((c) => {
        const values = rings[c].toArray();
        return (
          <td key={c}>
            <span className="value">{values.length ? values[values.length - 1].toFixed(2) : "—"}</span>
            <Sparkline values={values} capacity={KEEP} minSpan={0.5} height={28} color="#7c3aed" label={`Module ${module} ${c}, last ${values.length} readings (dBm)`} testId={`power-chart-${module}-${c}`} />
          </td>
        );
      })}
    </tr>
  );
});

function PowerTable() {
  return (
    <section className="card">
      <h3>
        Optical power <span className="muted">dBm, last 30 s</span>
      </h3>
      <table className="power">
        <thead>
          <tr>
            <th />
            {CHANNELS.map((c) => (
              <th key={c}>{c}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {POWER_MODULES.map((m) => (
            <PowerModule key={m} module={m} />
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** The device's link: a second connection, to the device endpoint in its own dialect. */
function DeviceLink() {
  const { state } = useConnectionState();
  return (
    <span className={`pill link ${state}`} data-testid="device-state">
      {state}
    </span>
  );
}

/** The device's `history` channel: a whole 30-minute series per message, charted as it comes. */
function DeviceHistoryCharts() {
  const h = useLatest("history");
  const { state } = useConnectionState();
  const labels = h?.cpu?.map((p) => p.time) ?? [];
  return (
    <div className={state === "connected" ? "charts" : "charts stale"} data-testid="device-history">
      {!h && <p className="muted">Waiting for the device's history…</p>}
      {h && (
        <>
          <LineChart
            title="CPU"
            unit=" %"
            min={0}
            labels={labels}
            series={[{ name: "used", color: "#2563eb", values: h.cpu.map((p) => p.value) }]}
            testId="history-cpu"
          />
          <LineChart
            title="Memory"
            unit=" %"
            min={0}
            labels={labels}
            series={[{ name: "used", color: "#16a34a", values: h.memory.map((p) => Math.round((100 * p.used) / (p.used + p.available))) }]}
            testId="history-memory"
          />
          <LineChart
            title="Network"
            unit=""
            min={0}
            labels={labels}
            series={[
              { name: "down", color: "#0891b2", values: h.network.map((p) => p.download) },
              { name: "up", color: "#db2777", values: h.network.map((p) => p.upload) },
            ]}
            testId="history-network"
          />
        </>
      )}
    </div>
  );
}

const query = new URLSearchParams(location.search);
const DEVICE = query.get("device") ?? "3f2b8c1e-7d4a-4e9b-9c0d-5a6e7f8091a2";
// The device endpoint takes the page's token too (a server with a JWT secret
// admits no anonymous device watcher).
const DEVICE_OPTIONS = query.has("token") ? { dialect: "devices", token: query.get("token") } : { dialect: "devices" };

function DeviceHistory() {
  return (
    <section className="card">
      <HublinkProvider url={`/api/v1/devices/${encodeURIComponent(DEVICE)}/ws`} options={DEVICE_OPTIONS}>
        <h3>
          Device {DEVICE.slice(0, 8)} <span className="muted">history</span> <DeviceLink />
        </h3>
        <DeviceHistoryCharts />
      </HublinkProvider>
    </section>
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
  useTopic(ORDERS, (event, m) => setEvents((list) => [{ seq: m.seq, event }, ...list].slice(0, 10)));
  return (
    <section className="card">
      <h3>Order events</h3>
      {refused && <p className="muted">Order events need a token (open the page with ?token=…): {refused}</p>}
      <ul className="feed" data-testid="orders">
        {events.map(({ seq, event }) => (
          <li key={seq}>
            <code>#{seq}</code> <b>{event.type ?? "event"}</b> <span className="muted">{summary(event.data ?? event)}</span>
          </li>
        ))}
      </ul>
    </section>
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
  // While the connection is down the readings are the last known ones, not
  // live: they are dimmed until it is back (the device card has its own link).
  const { state } = useConnectionState();
  return (
    <main className={state === "connected" ? undefined : "stale"}>
      <Header />
      <ConnectionPanel />
      <section className="grid machines">
        {MACHINES.map((id) => (
          <Machine key={id} id={id} />
        ))}
      </section>
      <section className="grid two">
        <PowerTable />
        <OrderFeed />
      </section>
      <DeviceHistory />
    </main>
  );
}
