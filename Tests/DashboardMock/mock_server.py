#!/usr/bin/env python3
"""A development mock of the dashboard server (docs/dashboard.md ("JSON API")).

Serves Sources/QTasksDashboard/Assets/index.html (with {{BASE}} replaced),
the assets, canned JSON for every endpoint, an SSE /api/live stream that
emits an update every second, and the POST endpoints (stateful, in memory).
Plain Python standard library; bound to 127.0.0.1 only.

    python3 Tests/DashboardMock/mock_server.py [--port 8765] [--base /qtasks]
        [--live-tasks 50] [--no-state]

The data deliberately contains hostile strings (HTML, control characters,
very long names and tracebacks) to check that the pages escape everything.
"""

import argparse
import json
import random
import threading
import time
import uuid as uuidlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

ASSETS = Path(__file__).resolve().parents[2] / "Sources" / "QTasksDashboard" / "Assets"
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
STATUSES = ["new", "process", "retry", "success", "error", "cancel"]
NASTY_NAME = '<img src=x onerror="alert(1)">evil\x1b[31m&amp;'
LONG_NAME = "reports.generate_" + "very_long_task_name_" * 8
TRACEBACK = (
    "Traceback (most recent call last):\n"
    + "".join(
        f'  File "/srv/app/tasks/module_{i}.py", line {10 + i}, in handler_{i}\n'
        f"    result = do_something_with_a_rather_long_expression(argument_{i}, "
        f"{'x' * 120})\n"
        for i in range(25)
    )
    + "ValueError: boom <script>alert('xss')</script> \x1b[0m\x07"
)

def make_workflows(now):
    def task(name, status, error=None):
        return {"kind": "task", "task_name": name, "uuid": new_uuid(), "status": status, "error": error}
    boom = "ValueError: boom <script>alert('xss')</script> (step charge 1)"
    group = {"kind": "group", "id": new_uuid(), "error": None, "window": 2, "total": 5, "settled": 3, "failed": 1,
             "halted": False, "completed": False, "omitted": 2, "children": [
                 task("add", "success"), task("charge", "error", boom),
                 {"kind": "chain", "error": None, "children": [task("add", "process"), task(NASTY_NAME, None)]}]}
    tree = {"kind": "chain", "error": None, "children": [task("add", "success"), group, task("sum", None)]}
    running = {"id": new_uuid(), "status": "process", "policy": "all_settled", "created_at": now - 30,
               "updated_at": now - 2, "tasks": 9, "result": None, "error": None}
    failed = {"id": new_uuid(), "status": "error", "policy": "fail_fast", "created_at": now - 600,
              "updated_at": now - 590, "tasks": 1, "result": None, "error": boom}
    return {running["id"]: {"workflow": running, "tree": tree},
            failed["id"]: {"workflow": failed, "tree": task("charge", "error")}}


lock = threading.Lock()
rng = random.Random(42)
NOW = time.time()


def new_uuid():
    return str(uuidlib.UUID(int=rng.getrandbits(128), version=4))


def make_task(i, now):
    status = rng.choice(STATUSES + ["success"] * 4)
    name = [("add"), ("charge"), (NASTY_NAME), (LONG_NAME), ("email.send")][i % 5]
    created = now - i * 37.3 - rng.random()
    duration = None if status in ("new", "process") else round(rng.random() * 3, 4)
    return {
        "uuid": new_uuid(),
        "task_name": name,
        "queue": ["default", "billing", "emails"][i % 3],
        "status": status,
        "attempt": 1 if status != "retry" else 2,
        "worker_id": None if status == "new" else f"host-{i % 2}.{4242 + i % 2}.ab1{i % 2}",
        "created_at": created,
        "updated_at": created + (duration or 0) + 0.01,
        "duration": duration,
        "error": "ValueError: boom <b>bold</b>\x1b[31m" if status in ("error", "retry") else None,
    }


TASKS = [make_task(i, NOW) for i in range(180)]


def make_detail(summary):
    u = summary["uuid"]
    t0 = summary["created_at"]
    status = summary["status"]
    rec = {
        "uuid": u,
        "task_name": summary["task_name"],
        "queue": summary["queue"],
        "status": status,
        "priority": 0,
        "attempt": summary["attempt"],
        "worker_id": summary["worker_id"],
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "created_at": t0,
        "updated_at": summary["updated_at"],
        "started_at": t0 + 0.01,
        "finished_at": summary["updated_at"],
        "duration": summary["duration"],
    }
    idx = TASKS.index(summary) if summary in TASKS else 0
    if idx % 4 == 1:
        rec["arguments"] = {"omitted": True}
    elif idx % 4 == 2:
        rec["arguments"] = {"truncated": True, "text": '{"args": ["' + "A" * 300 + "<script>"}
    else:
        rec["arguments"] = {"args": [2, 3, "<b>x</b>"], "kwargs": {"note": "ünïcode \x1b[1m"}}
    attempts = []
    events = [{"kind": "sent", "attempt": 1, "timestamp": t0 - 0.5}]
    if status in ("error", "retry"):
        rec["failure"] = {"type": "ValueError", "message": "boom <script>alert(1)</script>",
                          "traceback": TRACEBACK}
        rec["retry_delay"] = 2.0
        attempts.append({"attempt": 1, "worker_id": "host-0.4242.ab10", "received_at": t0,
                         "started_at": t0 + 0.001, "ended_at": t0 + 0.2, "outcome": "retried",
                         "duration": 0.2, "retry_delay": 2.0, "error": "ValueError: boom"})
        events += [
            {"kind": "received", "attempt": 1, "worker_id": "host-0.4242.ab10", "timestamp": t0},
            {"kind": "started", "attempt": 1, "worker_id": "host-0.4242.ab10", "timestamp": t0 + 0.001},
            {"kind": "retried", "attempt": 1, "worker_id": "host-0.4242.ab10", "timestamp": t0 + 0.2,
             "duration": 0.2, "retry_delay": 2.0, "failure": rec["failure"]},
        ]
        if status == "error":
            rec["attempt"] = 2
            rec["dead_letter_queue"] = summary["queue"] + ".dlq"
            attempts.append({"attempt": 2, "worker_id": "host-1.4243.ab11", "received_at": t0 + 2.2,
                             "started_at": t0 + 2.21, "ended_at": t0 + 2.5, "outcome": "dead_lettered",
                             "duration": 0.3, "retry_delay": None, "error": "ValueError: boom"})
            events += [
                {"kind": "received", "attempt": 2, "worker_id": "host-1.4243.ab11", "timestamp": t0 + 2.2},
                {"kind": "failed", "attempt": 2, "worker_id": "host-1.4243.ab11", "timestamp": t0 + 2.5,
                 "duration": 0.3, "failure": rec["failure"]},
                {"kind": "dead_lettered", "attempt": 2, "worker_id": "host-1.4243.ab11",
                 "timestamp": t0 + 2.5, "dead_letter_queue": rec["dead_letter_queue"]},
            ]
    elif status in ("new",):
        pass
    else:
        outcome = {"success": "succeeded", "cancel": "cancelled", "process": None}[status]
        attempts.append({"attempt": 1, "worker_id": summary["worker_id"], "received_at": t0,
                         "started_at": t0 + 0.01, "ended_at": None if outcome is None else summary["updated_at"],
                         "outcome": outcome, "duration": summary["duration"], "retry_delay": None,
                         "error": None})
        events += [{"kind": "received", "attempt": 1, "worker_id": summary["worker_id"], "timestamp": t0},
                   {"kind": "started", "attempt": 1, "worker_id": summary["worker_id"], "timestamp": t0 + 0.01}]
        if outcome:
            events.append({"kind": outcome, "attempt": 1, "worker_id": summary["worker_id"],
                           "timestamp": summary["updated_at"], "duration": summary["duration"]})
        if status == "success":
            rec["result"] = {"total": 5, "items": [1, 2, {"html": "<i>x</i>"}], "nested": {"ok": True}}
    rec["attempts"] = attempts
    rec["events"] = events
    return rec


def dlq_messages(queue, n):
    msgs = []
    for i in range(n):
        u = new_uuid()
        msgs.append({
            "position": i + 1,
            "uuid": u if i != 2 else None,
            "task_name": [NASTY_NAME, "charge", None, LONG_NAME][i % 4],
            "origin_queue": queue if i != 2 else None,
            "error_type": "CardDeclined" if i % 2 else "ValueError",
            "error_message": "card declined <b>now</b>\n" + "x" * 200 if i % 2 else "boom",
            "failed_at": NOW - 600 * (i + 1),
            "attempts": 3 if i != 2 else None,
            "reason": ["rejected", "expired", None, "delivery_limit"][i % 4],
            "headers": {"x-qtasks-error-type": "ValueError", "x-qtasks-attempts": 3,
                        "x-death": [{"count": 1, "queue": queue, "reason": "rejected"}],
                        "x-weird<script>": "\x1b[31mred"},
            "body": json.dumps({"task_name": "charge", "args": [1, 2], "kwargs": {}}),
        })
    return msgs


DLQ = {"default": dlq_messages("default", 5), "billing": dlq_messages("billing", 2), "emails": []}
WORKFLOWS = make_workflows(NOW)


def chart(now):
    start = int(now // 60) * 60 - 59 * 60
    return {"bucket_seconds": 60, "start": start,
            "succeeded": [rng.randint(0, 40) + (i * 2) for i in range(60)],
            "failed": [rng.choice([0, 0, 0, 1, 2, 5]) for _ in range(60)]}


LAST_HOUR = {"succeeded": 1200, "failed": 3, "retried": 5, "dead_lettered": 1}


def workers(now):
    return [
        {"worker_id": "host-0.4242.ab10", "host": "host-0", "pid": 4242, "queues": ["default", "billing"],
         "concurrency": 8, "in_flight": 1, "processed": 100, "failed": 2, "retried": 1, "version": "0.5.0",
         "started_at": now - 10000, "last_heartbeat": now - 2, "expires_at": now + 13, "uptime": 10000.0,
         "status": "online"},
        {"worker_id": "host-1.4243.ab11", "host": "host-1", "pid": 4243, "queues": ["emails"],
         "concurrency": 4, "in_flight": 0, "processed": 12345, "failed": 0, "retried": 0, "version": "0.5.0",
         "started_at": now - 90000, "last_heartbeat": now - 1, "expires_at": now + 14, "uptime": 90000.0,
         "status": "online"},
        {"worker_id": "old-host.<b>1</b>.ff00", "host": "old-host", "pid": 1, "queues": ["default"],
         "concurrency": 1, "in_flight": 1, "processed": 3, "failed": 1, "retried": 0, "version": "0.4.9",
         "started_at": now - 600, "last_heartbeat": now - 22, "expires_at": now + 3, "uptime": 578.0,
         "status": "stale"},
    ]


class Handler(BaseHTTPRequestHandler):
    server_version = "QTasksMock/1"
    base = ""
    state_available = True
    live_tasks = 50

    def log_message(self, fmt, *args):  # quieter
        pass

    # helpers
    def send_json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status, message):
        self.send_json({"error": message}, status)

    def send_index(self):
        html = (ASSETS / "index.html").read_text().replace("{{BASE}}", self.base)
        body = html.encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES[".html"])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def route(self):
        parts = urlsplit(self.path)
        path = parts.path
        if self.base:
            if not (path == self.base or path.startswith(self.base + "/")):
                self.send_error_json(404, "outside the mount")
                return None, None
            path = path[len(self.base):] or "/"
        return path, parse_qs(parts.query)

    def do_GET(self):
        path, query = self.route()
        if path is None:
            return
        if path.startswith("/assets/"):
            f = ASSETS / path[len("/assets/"):]
            if f.parent != ASSETS or not f.is_file():
                return self.send_error_json(404, "no such asset")
            body = f.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES.get(f.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        if not path.startswith("/api/"):
            return self.send_index()
        api = [unquote(p) for p in path[len("/api/"):].split("/")]
        now = time.time()
        time.sleep(0.05)  # a little latency, to see loading states
        if api == ["overview"]:
            with lock:
                return self.send_json({
                    "generated_at": now, "queue_source": "management", "queue_error": None,
                    "queues": [
                        {"name": "default", "ready": 3, "unacked": 1, "consumers": 2, "publish_rate": 12.5,
                         "deliver_rate": 12.0, "dead_letters": len(DLQ["default"])},
                        {"name": "billing", "ready": 0, "unacked": None, "consumers": 1, "publish_rate": None,
                         "deliver_rate": None, "dead_letters": len(DLQ["billing"])},
                        {"name": "emails", "ready": 12345, "unacked": 0, "consumers": 0, "publish_rate": 0.0,
                         "deliver_rate": 0.0, "dead_letters": None},
                        {"name": "q-" + "very-long-queue-name-" * 5 + "<i>x</i>", "ready": 0, "unacked": 0,
                         "consumers": 0, "publish_rate": 0.1, "deliver_rate": 0.0, "dead_letters": 0},
                    ],
                    "workers": {"online": 2, "stale": 1},
                    "last_hour": dict(LAST_HOUR),
                    "chart": chart(now),
                })
        if api == ["workers"]:
            return self.send_json({"workers": workers(now), "stale_after": 15.0})
        if api == ["tasks"]:
            return self.tasks(query)
        if len(api) == 2 and api[0] == "tasks":
            with lock:
                found = next((t for t in TASKS if t["uuid"] == api[1]), None)
            if not found:
                return self.send_error_json(404, f"no record of task {api[1]}")
            return self.send_json(make_detail(found))
        if api == ["dead-letters"]:
            with lock:
                return self.send_json({"queues": [
                    {"queue": q, "dead_letter_queue": q + ".dlq", "count": len(m)} for q, m in DLQ.items()]})
        if len(api) == 2 and api[0] == "dead-letters":
            q = api[1][:-4] if api[1].endswith(".dlq") else api[1]
            if q not in DLQ:
                return self.send_error_json(404, f"no dead-letter queue {q}.dlq")
            limit = int(query.get("limit", ["50"])[0])
            with lock:
                msgs = DLQ[q][:limit]
                return self.send_json({"queue": q, "dead_letter_queue": q + ".dlq", "count": len(DLQ[q]),
                                       "messages": msgs})
        if api == ["schedules"]:
            if not self.state_available:
                return self.send_json({"available": False, "error": None, "entries": []})
            return self.send_json({"available": True, "error": None, "entries": [
                {"name": "nightly-report", "task_name": "report", "queue": "default", "schedule": "cron 0 3 * * *",
                 "last_tick": int(now) - 3600, "next_tick": int(now) + 7200, "last_submitted_by": "host:4242",
                 "last_submitted_at": now - 3599.8},
                {"name": "heartbeat<script>", "task_name": NASTY_NAME, "queue": "default", "schedule": "every 60s",
                 "last_tick": None, "next_tick": None, "last_submitted_by": None, "last_submitted_at": None},
            ]})
        if api[0] == "state":
            if not self.state_available:
                return self.send_json({"available": False, "namespaces": []})
            if len(api) == 1:
                return self.send_json({"available": True, "namespaces": ["orders", "qtasks-schedule", "we ird/<ns>"]})
            if len(api) == 2:
                return self.send_json({"namespace": api[1], "keys": ["42", "43", "a/b <c>"], "truncated": True})
            if len(api) == 3:
                if api[2] == "404":
                    return self.send_error_json(404, "no such key")
                return self.send_json({"namespace": api[1], "key": api[2], "fields": {
                    "step": "paid", "total": 12.5, "items": [{"sku": "<b>", "qty": 2}], "note": "\x1b[31mred"}})
        if api == ["workflows"]:
            statuses = [x for v in query.get("status", []) for x in v.split(",") if x]
            rows = [w["workflow"] for w in WORKFLOWS.values() if not statuses or w["workflow"]["status"] in statuses]
            return self.send_json({"workflows": rows, "limit": 50, "offset": 0, "has_more": False,
                                   "scan_truncated": False})
        if len(api) == 2 and api[0] == "workflows":
            found = WORKFLOWS.get(api[1])
            if not found:
                return self.send_error_json(404, f"no workflow {api[1]} (not started by a worker with this result store, or expired)")
            return self.send_json(dict(found, members=int(query.get("members", ["50"])[0])))
        if api == ["live"]:
            return self.live()
        return self.send_error_json(404, "no such endpoint")

    def tasks(self, query):
        statuses = query.get("status", [])
        for s in statuses:
            if s not in STATUSES:
                return self.send_error_json(400, f"unknown status {s}")
        name = query.get("name", [None])[0]
        queue = query.get("queue", [None])[0]
        since = query.get("since", [None])[0]
        until = query.get("until", [None])[0]
        u = query.get("uuid", [None])[0]
        limit = min(int(query.get("limit", ["50"])[0]), 500)
        offset = int(query.get("offset", ["0"])[0])
        with lock:
            rows = list(TASKS)
        if statuses:
            rows = [t for t in rows if t["status"] in statuses]
        if name:
            rows = [t for t in rows if t["task_name"] == name]
        if queue:
            rows = [t for t in rows if t["queue"] == queue]
        if since:
            rows = [t for t in rows if t["updated_at"] >= float(since)]
        if until:
            rows = [t for t in rows if t["updated_at"] <= float(until)]
        if u:
            rows = [t for t in rows if t["uuid"] == u]
        page = rows[offset:offset + limit]
        return self.send_json({"tasks": page, "limit": limit, "offset": offset,
                               "has_more": offset + limit < len(rows)})

    def live(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            self.wfile.write(b": hello\n\n")
            self.wfile.flush()
            while True:
                time.sleep(1)
                now = time.time()
                recent = []
                with lock:
                    for i in range(self.live_tasks):
                        t = make_task(i, now)
                        t["created_at"] = now - rng.random()
                        t["updated_at"] = now
                        recent.append(t)
                    # some updates are status changes of existing tasks
                    if TASKS:
                        old = dict(TASKS[0])
                        old["status"] = "success"
                        old["updated_at"] = now
                        recent.append(old)
                    TASKS[:0] = recent[:self.live_tasks]
                    del TASKS[1000:]
                    LAST_HOUR["succeeded"] += sum(1 for t in recent if t["status"] == "success")
                    LAST_HOUR["failed"] += sum(1 for t in recent if t["status"] == "error")
                payload = {
                    "generated_at": now,
                    "last_hour": dict(LAST_HOUR),
                    "chart_tail": {"start": int(now // 60) * 60, "succeeded": int(now) % 60 * 3,
                                   "failed": int(now) % 7},
                    "workers": {"online": 2, "stale": 1},
                    "recent": recent[:50],
                }
                self.wfile.write(b"event: update\ndata: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return

    def do_POST(self):
        path, _ = self.route()
        if path is None:
            return
        if self.headers.get("X-QTasks-Request") != "1":
            return self.send_error_json(403, "missing X-QTasks-Request header")
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.send_error_json(400, "malformed JSON body")
        api = [unquote(p) for p in path[len("/api/"):].split("/")] if path.startswith("/api/") else []
        if len(api) == 3 and api[0] == "dead-letters":
            q = api[1][:-4] if api[1].endswith(".dlq") else api[1]
            if q not in DLQ:
                return self.send_error_json(404, f"no dead-letter queue {q}.dlq")
            with lock:
                if api[2] == "replay":
                    u = body.get("uuid")
                    if u is not None:
                        m = next((m for m in DLQ[q] if m["uuid"] == u), None)
                        if m is None:
                            return self.send_error_json(404, f"no message of task {u} in {q}.dlq")
                        DLQ[q].remove(m)
                        return self.send_json({"moved": {m["origin_queue"] or q: 1}})
                    n = len(DLQ[q])
                    if q == "billing":  # an error path to check the banner
                        return self.send_error_json(503, "broker unavailable: <b>connection refused</b>")
                    DLQ[q] = []
                    return self.send_json({"moved": {q: n} if n else {}})
                if api[2] == "purge":
                    if body.get("confirm") != q + ".dlq":
                        return self.send_error_json(400, f"purge needs {{\"confirm\": \"{q}.dlq\"}}")
                    n = len(DLQ[q])
                    DLQ[q] = []
                    return self.send_json({"purged": n})
        return self.send_error_json(404, "no such endpoint")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--base", default="", help='mount prefix, "" or e.g. /qtasks')
    ap.add_argument("--live-tasks", type=int, default=50, help="tasks per live update")
    ap.add_argument("--no-state", action="store_true", help="answer as without a State store")
    args = ap.parse_args()
    Handler.base = args.base.rstrip("/")
    Handler.state_available = not args.no_state
    Handler.live_tasks = args.live_tasks
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"mock dashboard on http://127.0.0.1:{args.port}{Handler.base}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
