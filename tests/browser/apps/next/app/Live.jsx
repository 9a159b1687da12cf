"use client";
// As the README writes it: a relative URL, no ssr:false, no dynamic import.
import { useState } from "react";
import { HublinkProvider, useConnectionState, useLatestEntry, useTopic } from "hublink/react";

function Status() {
  const { state } = useConnectionState();
  return <p id="state">{state}</p>;
}

function Temperature() {
  const [temp, setTemp] = useState(null);
  useTopic("machines.CNC-001", (msg) => {
    if (msg.type === "sensor_data") setTemp(msg.data.temperature);
  });
  const { stale } = useLatestEntry("machines.CNC-001");
  return (
    <p id="temp" data-stale={String(stale)}>
      {temp ?? "—"}
    </p>
  );
}

export default function Live() {
  return (
    <HublinkProvider url="/ws">
      <Status />
      <Temperature />
    </HublinkProvider>
  );
}
