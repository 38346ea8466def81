"""quart_app.py: the Quart peer of the spoke benchmarks, run by hypercorn
(asyncio), started by bench.py.

Same endpoints as spoke's hello and sleep examples, each the idiomatic
Quart equivalent of the spoke route's mode:
  /hello        async view, on the event loop (SPOKE_ASYNC)
  /hello/sync   plain view: Quart runs it on a thread pool (SPOKE_SYNC)
  /sleep/async  awaits asyncio.sleep(): the loop serves others meanwhile
  /sleep/sync   calls time.sleep() in an async view: the classic mistake,
                it blocks the event loop and every request behind it
/pid tells bench.py which worker answered.
"""
import asyncio
import os
import time

from quart import Quart, Response, request

app = Quart(__name__)
HELLO = "Hello, World!"


def hello_response():
    return Response(HELLO, mimetype="text/plain")


def sleep_ms():
    """?ms=N as seconds; 2000 ms by default, as in spoke's sleep.c."""
    return min(int(request.args.get("ms", "2000")), 60000) / 1000.0


@app.get("/hello")
async def hello():
    return hello_response()


@app.get("/hello/sync")
def hello_sync():
    return hello_response()


@app.get("/sleep/async")
async def sleep_async():
    await asyncio.sleep(sleep_ms())
    return hello_response()


@app.get("/sleep/sync")
async def sleep_sync():
    time.sleep(sleep_ms())  # blocks the event loop, on purpose
    return hello_response()


@app.get("/pid")
async def pid():
    return Response(str(os.getpid()), mimetype="text/plain")
