"""A fast Runner stub for benchmarks: a minimal HTTP/1.1 keep-alive server on asyncio that
answers every ``POST /v1/execute`` with success and records (arrival time, run id, schedule id,
scheduled_for, calls in flight on arrival, this one included) as JSON lines, flushed every
200 ms and on SIGTERM. With CALL_MS it answers each call after that many milliseconds, like an
extension that takes time, so calls overlap and the in-flight count shows the Runner's load.

Usage: python bench/runner_stub.py PORT OUT_FILE [CALL_MS]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time

REPLY = json.dumps({"status": 200, "headers": {}, "body_b64": "e30="}).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(REPLY)).encode()
    + b"\r\n\r\n"
    + REPLY
)


async def main(port: int, out_path: str, call_ms: float = 0.0) -> None:
    pending: list[str] = []
    in_flight = 0
    out = open(out_path, "a")  # noqa: SIM115, ASYNC230 - opened once at start, closed at exit

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal in_flight
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:].strip())
                body = await reader.readexactly(length) if length else b""
                arrived = time.time()
                in_flight += 1
                ctx = json.loads(body).get("context", {})
                pending.append(
                    json.dumps(
                        {
                            "t": arrived,
                            "run_id": ctx.get("run_id"),
                            "tenant_id": ctx.get("tenant_id"),
                            "schedule_id": ctx.get("schedule_id"),
                            "scheduled_for": ctx.get("scheduled_for"),
                            "attempt": ctx.get("attempt"),
                            "in_flight": in_flight,
                        }
                    )
                )
                try:
                    if call_ms:
                        await asyncio.sleep(call_ms / 1000)  # the extension's own work
                    writer.write(RESPONSE)
                    await writer.drain()
                finally:
                    in_flight -= 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def flush() -> None:
        if pending:
            out.write("\n".join(pending) + "\n")
            out.flush()
            pending.clear()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
            flush()
    flush()
    out.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0))
