# Varnish as a caching reverse proxy for benchmarks/bench_proxy.py.
# Single-braced placeholders are filled in by the benchmark (str.format: literal braces are doubled).
vcl 4.1;

backend origin {{
    .host = "{origin_host}";
    .port = "{origin_port}";
}}

sub vcl_deliver {{
    if (obj.hits > 0) {{
        set resp.http.X-Cache = "HIT";
    }} else {{
        set resp.http.X-Cache = "MISS";
    }}
}}
