// Plugin configuration shared by both examples: `key=value` items separated by `;` or
// newlines; blanks around keys and values are dropped, items without `=` are skipped.
export function parseConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const items = text.replaceAll("\n", ";").split(";");
  for (let i = 0; i < items.length; i++) {
    const item = items[i].trim();
    const eq = item.indexOf("=");
    if (eq < 0) continue;
    out.set(item.substring(0, eq).trim(), item.substring(eq + 1).trim());
  }
  return out;
}
