"""flask_app.py: the Flask peer of the spoke benchmarks, run by gunicorn
(sync workers with threads: `-k gthread`), started by bench.py.

Same endpoints as spoke's hello and sleep examples. Flask has no way to
wait without holding its thread, so both sleep routes call time.sleep():
that is the motivating "blocking handler" case. /hello/sync is /hello
(every Flask handler runs on a worker thread). /pid tells bench.py which
worker answered, so it can wait until every worker is serving.
"""
import os
import time

from flask import Flask, Response, request

app = Flask(__name__)
HELLO = "Hello, World!"


def hello_response():
    return Response(HELLO, mimetype="text/plain")


def sleep_ms():
    """?ms=N as seconds; 2000 ms by default, as in spoke's sleep.c."""
    return min(int(request.args.get("ms", "2000")), 60000) / 1000.0


@app.get("/hello")
def hello():
    return hello_response()


@app.get("/hello/sync")
def hello_sync():
    return hello_response()


@app.get("/sleep/sync")
def sleep_sync():
    time.sleep(sleep_ms())
    return hello_response()


@app.get("/sleep/async")
def sleep_async():
    time.sleep(sleep_ms())  # Flask cannot park a request: this blocks too
    return hello_response()


@app.get("/pid")
def pid():
    return Response(str(os.getpid()), mimetype="text/plain")
