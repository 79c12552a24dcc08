// Parse each Adaptive Card with Microsoft's own `adaptivecards` package (the renderer Teams' clients
// build on) and report what it would not understand: unknown element or action types, invalid values.
// Input on stdin: {"name": card, ...}; output: [{"name", "events": [{"phase", "event", "message"}]}].
// Run from tests/test_adaptive_cards.py with NODE_PATH pointing at an install of adaptivecards@3.
const AC = require("adaptivecards/dist/adaptivecards.js");

const cards = JSON.parse(require("fs").readFileSync(0, "utf8"));
const report = [];
for (const [name, json] of Object.entries(cards)) {
  const card = new AC.AdaptiveCard();
  const context = new AC.SerializationContext();
  card.parse(json, context);
  const events = [];
  for (let i = 0; i < context.eventCount; i++) {
    const e = context.getEventAt(i);
    events.push({ phase: e.phase, event: e.event, message: e.message });
  }
  for (const e of card.validateProperties().validationEvents) {
    events.push({ phase: e.phase, event: e.event, message: e.message });
  }
  report.push({ name, events });
}
console.log(JSON.stringify(report));
