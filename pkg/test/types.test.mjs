// The TS unions (checked at compile time against the d.ts generated from the
// Rust types) must list exactly the names hublink-core produces at run time.
import "./setup.mjs";
import { test } from "node:test";
import assert from "node:assert/strict";
import { REASON_NAMES, STATE_NAMES, coreNames } from "../dist/index.js";

test("every Rust State::name() is in the TypeScript union, and only those", () => {
  assert.deepEqual([...coreNames().states].sort(), [...STATE_NAMES].sort());
});

test("every Rust Reason::name() is in the TypeScript union, and only those", () => {
  assert.deepEqual([...coreNames().reasons].sort(), [...REASON_NAMES].sort());
});
