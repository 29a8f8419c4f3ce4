// {{name}}: an edgenode Proxy-Wasm filter in AssemblyScript
// (public SDK @solo-io/proxy-runtime 0.1.8, compiled by AssemblyScript 0.14.9).
//
//   request:  paths under `deny_prefix` get a local 403 (the origin is never asked);
//             every other request goes upstream with `x-filter: {{name}}` added.
//   response: `x-greeting: <greeting>` is added on the way back.
//
// Configuration: `key=value` items separated by `;` or newlines, all optional:
//   greeting=hello from {{name}}; deny_prefix=/private

// The ABI entry points (proxy_on_*, malloc, proxy_abi_version_0_2_0) the host calls.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context,
  send_local_response, log, LogLevelValues, GrpcStatusValues, HeaderPair,
} from "@solo-io/proxy-runtime";
// Not re-exported by the SDK's index (0.1.8).
import { get_buffer_bytes, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";

class Settings {
  greeting: string = "hello from {{name}}";
  denyPrefix: string = "/private";
}

function parseSettings(text: string): Settings {
  const settings = new Settings();
  const items = text.replaceAll("\n", ";").split(";");
  for (let i = 0; i < items.length; i++) {
    const item = items[i].trim();
    const eq = item.indexOf("=");
    if (eq < 0) continue;
    const key = item.substring(0, eq).trim();
    const value = item.substring(eq + 1).trim();
    if (key == "greeting") settings.greeting = value;
    else if (key == "deny_prefix") settings.denyPrefix = value;
    else log(LogLevelValues.warn, "{{name}}: unknown config key '" + key + "' ignored");
  }
  return settings;
}

class {{Ident}}Root extends RootContext {
  settings: Settings = new Settings();

  createContext(context_id: u32): Context {
    return new {{Ident}}(context_id, this);
  }

  // Read the configuration with get_buffer_bytes: the SDK's default onConfigure (0.1.8)
  // traps on an empty configuration.
  onConfigure(configuration_size: u32): bool {
    const raw = get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, configuration_size);
    this.settings = parseSettings(String.UTF8.decode(raw));
    log(LogLevelValues.info, "{{name}}: configured greeting='" + this.settings.greeting +
      "' deny_prefix='" + this.settings.denyPrefix + "'");
    return true;
  }
}

class {{Ident}} extends Context {
  settings: Settings;

  constructor(context_id: u32, root_context: {{Ident}}Root) {
    super(context_id, root_context);
    this.settings = root_context.settings;
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const path = stream_context.headers.request.get(":path");
    const prefix = this.settings.denyPrefix;
    if (prefix.length > 0 && path.startsWith(prefix)) {
      log(LogLevelValues.info, "{{name}}: denied " + path);
      const extra: HeaderPair[] = [
        new HeaderPair(String.UTF8.encode("content-type"), String.UTF8.encode("text/plain")),
      ];
      send_local_response(403, "{{ident}}_denied", String.UTF8.encode("denied\n"), extra,
        GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    log(LogLevelValues.info, "{{name}}: allowed " + path);
    stream_context.headers.request.add("x-filter", "{{name}}");
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-greeting", this.settings.greeting);
    return FilterHeadersStatusValues.Continue;
  }
}

// The SDK picks the root context by the plugin's root_id: filter.toml sets root_id = "{{name}}".
registerRootContext((context_id: u32) => { return new {{Ident}}Root(context_id); }, "{{name}}");
