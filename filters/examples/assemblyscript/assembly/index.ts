// Example edgenode filter written with the public AssemblyScript Proxy-Wasm SDK
// (@solo-io/proxy-runtime 0.1.8). It shows the everyday parts of a filter:
//   * plugin configuration read once per root context (plain `key=value` text),
//   * request headers read (`:path`, `x-as-name`) and one added on the way upstream,
//   * a response header added on the way back (`x-as-filter`, `x-as-config`),
//   * a local response on a configured path (the origin is never contacted),
//   * a counter metric and logging through the host.

// The ABI entry points (proxy_on_*, malloc, proxy_abi_version_0_2_0) the host calls.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues,
  stream_context, send_local_response, log, LogLevelValues, GrpcStatusValues, HeaderPair, Counter,
} from "@solo-io/proxy-runtime";
// Not re-exported by the SDK's index; needed to read the configuration safely (see onConfigure).
import { get_buffer_bytes, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";
import { parseConfig } from "./config";

/** Settings parsed from the plugin configuration, e.g. "tag=edge-1; reply_path=/as-hello". */
class Settings {
  tag: string = "";
  replyPath: string = "";
}

function parseSettings(text: string): Settings {
  const settings = new Settings();
  const items = parseConfig(text);
  const keys = items.keys();
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (key == "tag") settings.tag = items.get(key);
    else if (key == "reply_path") settings.replyPath = items.get(key);
    else log(LogLevelValues.warn, "as_example: unknown config key '" + key + "' ignored");
  }
  return settings;
}

class AsExampleRoot extends RootContext {
  settings: Settings = new Settings();
  // Defined in onConfigure, not at top level: top-level code runs while the module is being
  // instantiated, before the host has a plugin to attach a metric to.
  requests: Counter | null = null;

  createContext(context_id: u32): Context {
    return new AsExample(context_id, this);
  }

  // The SDK's default onConfigure (0.1.8) passes the size where an out-pointer belongs and
  // traps on an empty configuration, so the configuration is read with get_buffer_bytes.
  onConfigure(configuration_size: u32): bool {
    const raw = get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, configuration_size);
    this.settings = parseSettings(String.UTF8.decode(raw));
    if (this.requests === null) this.requests = new Counter("as_example_requests");
    log(LogLevelValues.info, "as_example: configured tag='" + this.settings.tag +
      "' reply_path='" + this.settings.replyPath + "'");
    return true;
  }
}

class AsExample extends Context {
  name: string = "";
  settings: Settings;
  requests: Counter | null;

  constructor(context_id: u32, root_context: AsExampleRoot) {
    super(context_id, root_context);
    this.settings = root_context.settings;
    this.requests = root_context.requests;
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const path = stream_context.headers.request.get(":path");
    const name = stream_context.headers.request.get("x-as-name");
    this.name = name.length > 0 ? name : "anonymous";
    log(LogLevelValues.info, "as_example: request " + path + " from " + this.name);
    const requests = this.requests;
    if (requests !== null) requests.increment(1);

    if (this.settings.replyPath.length > 0 && path == this.settings.replyPath) {
      const extra: HeaderPair[] = [
        new HeaderPair(String.UTF8.encode("content-type"), String.UTF8.encode("text/plain")),
      ];
      send_local_response(200, "as_example_reply", String.UTF8.encode("hello " + this.name + "\n"),
        extra, GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    stream_context.headers.request.add("x-as-seen", "1");
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-as-filter", this.name);
    if (this.settings.tag.length > 0) {
      stream_context.headers.response.add("x-as-config", this.settings.tag);
    }
    return FilterHeadersStatusValues.Continue;
  }
}

// The host's root_id for this plugin must be "as_example" (the SDK picks the factory by it).
registerRootContext((context_id: u32) => { return new AsExampleRoot(context_id); }, "as_example");
