const test = require("node:test");
const assert = require("node:assert");
const { greeting } = require("../src/greeting");

test("greets by name at the right time of day", () => {
  assert.strictEqual(greeting("Ada", new Date("2026-01-01T09:00:00Z")), "Good morning, Ada!");
  assert.strictEqual(greeting("Ada", new Date("2026-01-01T15:00:00Z")), "Good afternoon, Ada!");
  assert.strictEqual(greeting("Ada", new Date("2026-01-01T21:00:00Z")), "Good evening, Ada!");
});

test("falls back to world for an empty name", () => {
  assert.strictEqual(greeting("  ", new Date("2026-01-01T09:00:00Z")), "Good morning, world!");
});
