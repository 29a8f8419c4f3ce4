// Turn a core module written against the canonical ABI into a component:
//   node componentize-c.mjs WIT_DIR WORLD CORE.wasm OUT.wasm
// (wasm-tools `component embed` + `component new`, as bundled with jco).  The WIT
// directory (world.wit + deps/<package>/*.wit) is handed over as one source with nested
// packages, since the bundled tools read no files themselves.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const [witDir, world, core, out] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const { componentEmbed, componentNew } = await import(
  join(here, "node_modules/@bytecodealliance/jco-transpile/dist/wasm-tools.js"));

let source = readFileSync(join(witDir, "world.wit"), "utf8") + "\n";
for (const pkg of readdirSync(join(witDir, "deps"))) {
  let name = null;
  let body = "";
  for (const file of readdirSync(join(witDir, "deps", pkg)).filter((f) => f.endsWith(".wit"))) {
    const text = readFileSync(join(witDir, "deps", pkg, file), "utf8");
    body += text.replace(/^\s*package\s+([^;]+);/m, (_, n) => { name = n.trim(); return ""; }) + "\n";
  }
  source += `package ${name} {\n${body}\n}\n`;
}
const embedded = await componentEmbed({ binary: readFileSync(core), witSource: source, world });
writeFileSync(out, await componentNew(embedded, null));
