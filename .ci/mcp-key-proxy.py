#!/usr/bin/env python3
"""A loopback proxy that lends a bot key to a client that sends none.

    mcp-key-proxy.py --listen PORT --to http://127.0.0.1:GATEWAY_PORT
    (the key in CHATGATE_PROXY_KEY, never on the command line)

The MCP project's conformance suite speaks to a server without
credentials; chatgate's /mcp answers nothing without a bot key. This
proxy adds `Authorization: Bearer <key>` to each request that has no
`Authorization` and passes everything else as sent -- the method, the
path, the body and every header, `Host` and `Origin` included (the
DNS-rebinding scenario forges both, and the gateway must see them).
Answers come back whole, with their status and headers. Standard library
only; .ci/mcp-conformance.sh starts and stops it.
"""
import argparse
import http.client
import os
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--to", required=True)
    args = ap.parse_args()
    key = os.environ.get("CHATGATE_PROXY_KEY", "")
    if not key:
        print("mcp-key-proxy: CHATGATE_PROXY_KEY is empty", file=sys.stderr)
        return 2
    target = urllib.parse.urlsplit(args.to)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def forward(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP:
                    conn.putheader(name, value)
            if "authorization" not in {n.lower() for n in self.headers.keys()}:
                conn.putheader("Authorization", f"Bearer {key}")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            res = conn.getresponse()
            data = res.read()
            self.send_response_only(res.status, res.reason)
            for name, value in res.getheaders():
                if name.lower() not in HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_DELETE = do_PUT = do_OPTIONS = do_PATCH = forward

    server = ThreadingHTTPServer(("127.0.0.1", args.listen), Handler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
