// Builds web/dist: our own files from src/ plus xterm.js and its fit addon from node_modules
// (installed from npm at build time; never committed).
import { cpSync, mkdirSync, rmSync } from "node:fs";

const dist = new URL("./dist/", import.meta.url);
rmSync(dist, { recursive: true, force: true });
mkdirSync(new URL("vendor/", dist), { recursive: true });
cpSync(new URL("./src/", import.meta.url), dist, { recursive: true });
const vendor = {
  "node_modules/@xterm/xterm/lib/xterm.js": "vendor/xterm.js",
  "node_modules/@xterm/xterm/css/xterm.css": "vendor/xterm.css",
  "node_modules/@xterm/addon-fit/lib/addon-fit.js": "vendor/addon-fit.js",
};
for (const [from, to] of Object.entries(vendor)) {
  cpSync(new URL(`./${from}`, import.meta.url), new URL(to, dist));
}
console.log("web UI built in", dist.pathname);
