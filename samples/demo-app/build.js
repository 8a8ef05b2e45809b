// Builds dist/index.html from src/: the page shows the greeting and when it was built.
const fs = require("node:fs");
const path = require("node:path");
const { greeting } = require("./src/greeting");

const built = new Date();
const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>ae demo</title></head>
<body><h1>${greeting("autonomous enterprise", built)}</h1>
<p>Built in a sandbox at ${built.toISOString()}, deployed after a human approval.</p></body></html>
`;
fs.mkdirSync(path.join(__dirname, "dist"), { recursive: true });
fs.writeFileSync(path.join(__dirname, "dist", "index.html"), html);
console.log(`built dist/index.html (${html.length} bytes)`);
