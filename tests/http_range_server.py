"""A static file server with HTTP range requests, for the remote-input tests
(tests/test_storage.py starts it as a separate process on loopback).

``python tests/http_range_server.py ROOT PORT_FILE LOG``: serves ROOT on 127.0.0.1 (a free
port, written to PORT_FILE once listening), answers ``Range: bytes=A-B`` with 206 and just
those bytes (the standard library's server ignores Range and sends whole files), refuses
every path under ``/denied/`` with 403, and appends one JSON line per GET to LOG: path,
the Range asked for and the bytes sent, so a test can prove that no split downloaded a
whole file.
"""
from __future__ import annotations

import json
import os
import re
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeHandler(SimpleHTTPRequestHandler):
    log_path = ""

    def _record(self, sent: int) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"path": self.path, "range": self.headers.get("Range"),
                                "sent": sent}) + "\n")

    def _denied(self) -> bool:
        if self.path.startswith("/denied/"):
            self.send_error(403, "Forbidden")
            return True
        return False

    def do_HEAD(self) -> None:
        if not self._denied():
            super().do_HEAD()

    def do_GET(self) -> None:
        if self._denied():
            return
        path = self.translate_path(self.path)
        wanted = _RANGE.match(self.headers.get("Range", "") or "")
        if not wanted or not os.path.isfile(path):
            # whole files (and directory listings) as the standard library serves them
            f = self.send_head()
            if f:
                try:
                    data = f.read()
                    self.wfile.write(data)
                    self._record(len(data))
                finally:
                    f.close()
            return
        size = os.path.getsize(path)
        first, last = wanted.groups()
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(size - 1, int(last) if last else size - 1)
        if start >= size or start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self._record(0)
            return
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self._record(len(data))

    def end_headers(self) -> None:
        if b"Accept-Ranges" not in b"".join(getattr(self, "_headers_buffer", [])):
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        pass  # the JSON log is the record


def main() -> None:
    root, port_file, log = sys.argv[1:4]
    RangeHandler.log_path = log
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=root))
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
