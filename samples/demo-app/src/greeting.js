// The demo's one piece of logic, covered by test/greeting.test.js.
function greeting(name, now = new Date()) {
  const who = String(name || "world").trim() || "world";
  const hour = now.getUTCHours();
  const part = hour < 12 ? "morning" : hour < 18 ? "afternoon" : "evening";
  return `Good ${part}, ${who}!`;
}

module.exports = { greeting };
