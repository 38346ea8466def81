"""quart_pg_app.py: the Quart + asyncpg peer of spoke's database benchmark
(tests/bench/db_bench.py), run by hypercorn (asyncio).

  /pg/async?ms=N   awaits SELECT pg_sleep(N/1000) on a connection of an
                   asyncpg pool: the idiomatic async view, the peer of
                   spoke's examples/pg.c /pg/async
  /hello           readiness
  /pid             which worker answered

The pool is made per worker process before it serves, SPOKE_BENCH_PG_POOL
connections (spoke's pool is per loop, the same total); the database is
SPOKE_BENCH_PG_DSN, a postgresql:// URL.
"""
import os

import asyncpg
from quart import Quart, Response, request

app = Quart(__name__)
POOL_SIZE = int(os.environ.get("SPOKE_BENCH_PG_POOL", "64"))
DSN = os.environ["SPOKE_BENCH_PG_DSN"]


@app.before_serving
async def open_pool():
    app.pool = await asyncpg.create_pool(DSN, min_size=POOL_SIZE,
                                         max_size=POOL_SIZE)


@app.after_serving
async def close_pool():
    await app.pool.close()


@app.get("/hello")
async def hello():
    return Response("Hello, World!", mimetype="text/plain")


@app.get("/pid")
async def pid():
    return Response(str(os.getpid()), mimetype="text/plain")


@app.get("/pg/async")
async def pg_async():
    ms = min(int(request.args.get("ms", "1000")), 60000)
    async with app.pool.acquire() as conn:
        await conn.execute("SELECT pg_sleep($1)", ms / 1000.0)
    return Response('{"slept_ms":%d,"mode":"async"}' % ms,
                    mimetype="application/json")
