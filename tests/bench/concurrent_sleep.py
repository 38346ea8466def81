#!/usr/bin/env python3
"""concurrent_sleep.py: wall time for N concurrent one-shot requests.

Opens N connections to HOST:PORT at once, each sending one
`GET PATH` (default /sleep/async?ms=2000), and reports the wall time
until every response has arrived, the error count and the status
counts. Standard library only; raises the open-files soft limit itself.

  concurrent_sleep.py PORT [N] [PATH]
"""
import asyncio
import resource
import sys
import time


async def one(port, path, results):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        writer.close()
        results.append(int(data.split(b" ", 2)[1]) if data else -1)
    except Exception as e:  # noqa: BLE001 - every failure counts as an error
        results.append(repr(e))


async def main():
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    path = sys.argv[3] if len(sys.argv) > 3 else "/sleep/async?ms=2000"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    results = []
    t0 = time.monotonic()
    await asyncio.gather(*(one(port, path, results) for _ in range(n)))
    wall = time.monotonic() - t0
    ok = sum(1 for r in results if r == 200)
    print(f"{n} x GET {path}: wall {wall:.3f}s, 200s {ok}, errors {n - ok}")
    return 0 if ok == n else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
