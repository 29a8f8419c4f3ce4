// Second example with the same SDK: an HTTP callout before the request goes upstream.
// The request is paused, `GET <auth_path>` is sent to the configured upstream, and when the
// answer arrives the request either continues with `x-as-auth: <answer body>` added, or is
// refused with a local 403.  Configuration: "upstream=<name>; auth_path=/auth".

export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues,
  stream_context, send_local_response, log, LogLevelValues, GrpcStatusValues, HeaderPair,
  WasmResultValues,
} from "@solo-io/proxy-runtime";
import { get_buffer_bytes, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";
import { parseConfig } from "./config";

function pair(key: string, value: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(key), String.UTF8.encode(value));
}

class CalloutRoot extends RootContext {
  upstream: string = "";
  authPath: string = "/auth";

  createContext(context_id: u32): Context {
    return new Callout(context_id, this);
  }

  onConfigure(configuration_size: u32): bool {
    const raw = get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, configuration_size);
    const items = parseConfig(String.UTF8.decode(raw));
    if (items.has("upstream")) this.upstream = items.get("upstream");
    if (items.has("auth_path")) this.authPath = items.get("auth_path");
    return this.upstream.length > 0;
  }
}

// AssemblyScript 0.14 has no closures: the callback gets the paused context back from the SDK.
function onAuthAnswer(origin: Context, headers: u32, body_size: usize, trailers: u32): void {
  const status = stream_context.headers.http_callback.get(":status");
  const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpCallResponseBody, 0, body_size as u32));
  log(LogLevelValues.info, "as_callout: auth answered " + status + " for context " + origin.context_id.toString());
  if (status == "200") {
    stream_context.headers.request.add("x-as-auth", body.trim());
    origin.continueRequest();
  } else {
    send_local_response(403, "as_callout_denied", String.UTF8.encode("denied\n"), [],
      GrpcStatusValues.InvalidCode);
  }
}

class Callout extends Context {
  constructor(context_id: u32, root_context: CalloutRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root_context as CalloutRoot;
    const user = stream_context.headers.request.get("x-as-name");
    const call: HeaderPair[] = [
      pair(":method", "GET"), pair(":path", root.authPath), pair(":authority", "auth"),
      pair("x-as-name", user),
    ];
    const result = root.httpCall(root.upstream, call, new ArrayBuffer(0), [], 2000, this, onAuthAnswer);
    if (result != WasmResultValues.Ok) {
      log(LogLevelValues.error, "as_callout: http call failed: " + result.toString());
      send_local_response(503, "as_callout_failed", String.UTF8.encode("auth unavailable\n"), [],
        GrpcStatusValues.InvalidCode);
    }
    return FilterHeadersStatusValues.StopIteration;
  }
}

registerRootContext((context_id: u32) => { return new CalloutRoot(context_id); }, "as_callout");
