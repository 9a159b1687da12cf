import { useCallback, useEffect, useReducer, useRef } from "react";

/** The last `size` numbers pushed, oldest first; pushing past `size` drops the oldest. */
export class Ring {
  constructor(size) {
    this.buf = new Float64Array(size);
    this.start = 0;
    this.length = 0;
  }

  push(x) {
    const n = this.buf.length;
    if (this.length < n) this.buf[(this.start + this.length++) % n] = x;
    else {
      this.buf[this.start] = x;
      this.start = (this.start + 1) % n;
    }
  }

  toArray() {
    const n = this.buf.length;
    const out = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.buf[(this.start + i) % n];
    return out;
  }

  clear() {
    this.start = this.length = 0;
  }
}

/**
 * One ring per key, kept across renders, and `push({key: value, …})` to feed
 * them from a socket callback. The component re-renders at most once per
 * animation frame however many messages arrive, and not at all while the tab
 * is hidden (the rings still fill, so it is current when shown again).
 */
export function useRings(keys, size = 60) {
  const rings = useRef(null);
  if (!rings.current) rings.current = Object.fromEntries(keys.map((k) => [k, new Ring(size)]));
  const [, redraw] = useReducer((n) => n + 1, 0);
  const frame = useRef(0);
  const push = useCallback((values) => {
    for (const k in values) if (Number.isFinite(values[k])) rings.current[k]?.push(values[k]);
    if (!frame.current)
      frame.current = requestAnimationFrame(() => {
        frame.current = 0;
        redraw();
      });
  }, []);
  useEffect(
    () => () => {
      cancelAnimationFrame(frame.current);
      frame.current = 0;
    },
    [],
  );
  return [rings.current, push];
}
