// Two hand-written SVG charts: a sparkline for live rings and a small line
// chart with axes for a whole series. No charting library: these are ~100
// lines and weigh nothing next to one.

/** The [lo, hi] to draw `values` in: `min`/`max` when given, else their range, widened to `minSpan`. */
function domain(values, min, max, minSpan) {
  let lo = min ?? Math.min(...values);
  let hi = max ?? Math.max(...values);
  if (hi - lo < minSpan) {
    const mid = (hi + lo) / 2;
    lo = min ?? mid - minSpan / 2;
    hi = max ?? lo + minSpan;
  }
  return [lo, hi];
}

const W = 200;

/**
 * The last `capacity` readings as a line, newest at the right edge: a new
 * reading slides the line left. Stretches to its box; the stroke does not.
 */
export function Sparkline({ values, capacity = 60, min, max, minSpan = 1, height = 40, color = "#2563eb", label, testId }) {
  // The track: the width a full `capacity` of readings will take.
  const track = <line className="track" x1="0" x2={W} y1={height - 1} y2={height - 1} vectorEffect="non-scaling-stroke" />;
  if (values.length < 2)
    return (
      <svg className="spark" viewBox={`0 0 ${W} ${height}`} preserveAspectRatio="none" height={height} data-testid={testId} aria-hidden="true">
        {track}
      </svg>
    );
  const [lo, hi] = domain(values, min, max, minSpan);
  const h = height - 4;
  const step = W / (capacity - 1);
  const x0 = W - (values.length - 1) * step;
  const pts = values.map((v, i) => `${(x0 + i * step).toFixed(1)},${(2 + h - ((v - lo) / (hi - lo)) * h).toFixed(1)}`);
  const line = pts.join(" ");
  return (
    <svg className="spark" viewBox={`0 0 ${W} ${height}`} preserveAspectRatio="none" height={height} role="img" data-testid={testId}>
      <title>{label}</title>
      {track}
      <polygon points={`${x0},${height} ${line} ${W},${height}`} fill={color} opacity="0.12" />
      <polyline points={line} fill="none" stroke={color} strokeWidth="2" vectorEffect="non-scaling-stroke" strokeLinejoin="round" />
    </svg>
  );
}

/** Round tick values covering [lo, hi] with about `count` steps. */
function ticks(lo, hi, count = 3) {
  const raw = (hi - lo) / count || 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let t = Math.floor(lo / step) * step; t <= hi + step * 0.999; t += step) out.push(Math.round(t * 1e6) / 1e6);
  return out;
}

/**
 * A whole series (each `series[i].values` aligned with `labels`) with a y axis
 * of round ticks, the first, middle and last x label, and a legend.
 */
export function LineChart({ title, series, labels, unit, min, testId }) {
  const [cw, ch, left, bottom] = [320, 150, 40, 20];
  const all = series.flatMap((s) => s.values);
  if (all.length === 0) return null;
  const t = ticks(min ?? Math.min(...all), Math.max(...all));
  const [lo, hi] = [t[0], t[t.length - 1]];
  const n = labels.length;
  const x = (i) => left + (i / Math.max(1, n - 1)) * (cw - left - 4);
  const y = (v) => 6 + (1 - (v - lo) / (hi - lo)) * (ch - bottom - 6);
  return (
    <figure className="chart" data-testid={testId}>
      <figcaption>
        <b>{title}</b>
        {series.map((s) => (
          <span key={s.name} className="key">
            <i style={{ background: s.color }} />
            {s.name} <b>{s.values[s.values.length - 1]}</b>
            {unit}
          </span>
        ))}
      </figcaption>
      <svg viewBox={`0 0 ${cw} ${ch}`} role="img" aria-label={`${title}, ${labels[0]} to ${labels[n - 1]}`}>
        {t.map((v) => (
          <g key={v} className="tick">
            <line x1={left} x2={cw - 4} y1={y(v)} y2={y(v)} />
            <text x={left - 6} y={y(v) + 4} textAnchor="end">
              {v}
            </text>
          </g>
        ))}
        {[0, Math.floor((n - 1) / 2), n - 1].map((i, k) => (
          <text key={k} className="xlabel" x={x(i)} y={ch - 4} textAnchor={["start", "middle", "end"][k]}>
            {labels[i]}
          </text>
        ))}
        {series.map((s) => (
          <polyline
            key={s.name}
            points={s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ")}
            fill="none"
            stroke={s.color}
            strokeWidth="2"
            strokeLinejoin="round"
          />
        ))}
      </svg>
    </figure>
  );
}
