"""A stand-in VIEScore judge on 127.0.0.1 for GPU smoke runs of `earl eval run` where no real judge is reachable.

It answers every OpenAI-style chat-completions POST with fixed scores: [8, 6] when the message holds two images
(the SC request), [4] when it holds one (PQ). It measures nothing about image quality; it exists so that the
evaluation loop (generation, judging, run directory, report) runs end to end with its real HTTP path.

    python3 bench/loopback_judge.py PORT
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        content = body.get("messages", [{}])[0].get("content", [])
        images = sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
        scores = [8, 6] if images == 2 else [4]
        reply = json.dumps({"score": scores, "reasoning": "loopback"})
        out = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
