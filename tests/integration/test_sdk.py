#!/usr/bin/env python3
"""The installable SDK, `spoke new` and `spoke check`.

Installs the build tree that holds SPOKE_BIN into a temporary prefix P
(`cmake --install BUILD --prefix P`), then, against P only:
  - a plugin project outside the tree builds with find_package(spoke) +
    spoke_add_plugin, and another with cc $(pkg-config --cflags spoke);
    P/bin/spoke serves both;
  - `P/bin/spoke new NAME DIR` writes a project whose README's build
    commands build it the first time; `spoke check` accepts it and
    P/bin/spoke serves its sync and async routes;
  - `spoke new` refuses bad names (exit 2) and non-empty directories;
  - `spoke check` says "ok" for good plugins and, for each broken
    fixture, exit 1 and the very reason the server logs when it refuses
    the same file.
Skipped (exit 77) without cmake, pkg-config or cc, or when SPOKE_BIN is
not in a CMake build tree.
"""

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import spoke_harness  # noqa: E402
from spoke_harness import (SANITIZER_RE, SPOKE_BIN, Server, check,  # noqa
                           check_eq, check_response, main, plugin_bytes,
                           plugin_path, test)

SKIP = 77
BUILD_DIR = os.path.dirname(os.path.abspath(SPOKE_BIN))
TOOL_TIMEOUT = 120

WORK = tempfile.mkdtemp(prefix="spoke-it-sdk-")
PREFIX = os.path.realpath(os.path.join(WORK, "prefix"))
atexit.register(shutil.rmtree, WORK, True)

_installed = False


def tool_env(**extra):
    env = dict(os.environ)
    # The sanitizer runtime of an ASan build must not be preloaded into
    # cmake or cc; only the spoke binaries are instrumented.
    env.pop("LD_PRELOAD", None)
    env.update(extra)
    return env


def run(cmd, cwd=None, env=None, timeout=TOOL_TIMEOUT, shell=False):
    """Runs CMD; returns (exit code, stdout, stderr) as text."""
    p = subprocess.run(cmd, cwd=cwd, env=env or tool_env(), shell=shell,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    return p.returncode, out, err


def run_ok(cmd, what, **kw):
    rc, out, err = run(cmd, **kw)
    check(rc == 0, "%s: exit code %r\ncommand: %s\nstdout:\n%s\nstderr:\n%s"
          % (what, rc, cmd if isinstance(cmd, str) else " ".join(cmd),
             out, err))
    return out, err


def spoke(binary, args, **kw):
    rc, out, err = run([binary] + args, **kw)
    check(not SANITIZER_RE.search(err), "sanitizer report:\n%s" % err)
    return rc, out, err


def installed_spoke():
    return os.path.join(PREFIX, "bin", "spoke")


def install():
    """Installs the build tree into PREFIX once."""
    global _installed
    if not _installed:
        run_ok(["cmake", "--install", BUILD_DIR, "--prefix", PREFIX],
               "cmake --install")
        _installed = True


def lib_dir():
    """PREFIX's lib directory (lib, or lib/<arch> with GNUInstallDirs)."""
    for root, dirs, _ in os.walk(PREFIX):
        if os.path.basename(root) == "cmake" and "spoke" in dirs:
            return os.path.dirname(root)
    raise spoke_harness.TestFailure("no */cmake/spoke under %s" % PREFIX)


def serve_installed(files):
    """A Server running PREFIX/bin/spoke on FILES {name: bytes}."""
    saved = spoke_harness.SPOKE_BIN
    spoke_harness.SPOKE_BIN = installed_spoke()
    try:
        return Server(files=files)
    finally:
        spoke_harness.SPOKE_BIN = saved


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def exported_symbols(so):
    """Defined dynamic symbols of SO, or None without nm."""
    if shutil.which("nm") is None:
        return None
    out, _ = run_ok(["nm", "-D", "--defined-only", so], "nm")
    return sorted(l.split()[-1] for l in out.splitlines() if l.strip())


GREET_C = r"""
#include <stdio.h>
#include <spoke.h>

static int greet(spoke_request_t *req) {
  char body[128];
  int n = snprintf(body, sizeof(body), "Hello, %s!\n",
                   spoke_request_param(req, "name"));
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, body, (size_t)n);
}

static const spoke_route_t routes[] = {
  { "GET", "/@NAME@/:name", SPOKE_ASYNC, greet },
};

SPOKE_PLUGIN(.name = "@NAME@", .version = "0.1.0", SPOKE_ROUTES(routes));
"""

UNDEF_C = r"""
#include <spoke.h>
int spoke_no_such_function(void);
static int h(spoke_request_t *req) {
  return spoke_no_such_function() ? 0 : spoke_response_send(req, "x", 1);
}
static const spoke_route_t routes[] = { { "GET", "/undef", SPOKE_ASYNC, h } };
SPOKE_PLUGIN(.name = "undef", .version = "1", SPOKE_ROUTES(routes));
"""


# ---------------------------------------------------------------- install

@test
def install_lays_out_the_sdk():
    install()
    lib = lib_dir()
    for rel in ("bin/spoke", "include/spoke.h", "share/doc/spoke/README.md"):
        check(os.path.isfile(os.path.join(PREFIX, rel)),
              "%s not installed" % rel)
    for rel in ("cmake/spoke/spokeConfig.cmake",
                "cmake/spoke/spokeConfigVersion.cmake",
                "cmake/spoke/SpokePlugin.cmake", "pkgconfig/spoke.pc"):
        check(os.path.isfile(os.path.join(lib, rel)),
              "%s not installed under %s" % (rel, lib))
    check(os.access(installed_spoke(), os.X_OK), "bin/spoke not executable")
    check_eq(read(os.path.join(PREFIX, "include", "spoke.h")),
             read(os.path.join(spoke_harness.ROOT, "sdk", "include",
                               "spoke.h")),
             "installed spoke.h")
    rc, out, _ = spoke(installed_spoke(), ["--version"])
    check(rc == 0 and "ABI" in out, "installed spoke --version: %r" % out)


@test
def find_package_plugin_builds_and_serves():
    install()
    src = os.path.join(WORK, "fp")
    write(os.path.join(src, "greet.c"), GREET_C.replace("@NAME@", "greet"))
    write(os.path.join(src, "undef.c"), UNDEF_C)
    write(os.path.join(src, "CMakeLists.txt"),
          "cmake_minimum_required(VERSION 3.18)\n"
          "project(greet C)\n"
          "find_package(spoke REQUIRED)\n"
          "spoke_add_plugin(greet greet.c)\n"
          "spoke_add_plugin(undef undef.c)\n"
          "set_target_properties(undef PROPERTIES EXCLUDE_FROM_ALL ON)\n")
    build = os.path.join(src, "build")
    run_ok(["cmake", "-S", src, "-B", build,
            "-DCMAKE_PREFIX_PATH=" + PREFIX], "configure (find_package)")
    cache = read(os.path.join(build, "CMakeCache.txt")).decode()
    m = re.search(r"^spoke_DIR:PATH=(.*)$", cache, re.M)
    check(m and os.path.realpath(m.group(1)) ==
          os.path.realpath(os.path.join(lib_dir(), "cmake", "spoke")),
          "find_package(spoke) found %r, not the installed package"
          % (m.group(1) if m else None))
    run_ok(["cmake", "--build", build], "build (find_package)")
    so = os.path.join(build, "greet.so")
    check(os.path.isfile(so), "no greet.so (spoke_add_plugin naming)")
    syms = exported_symbols(so)
    check(syms is None or syms == ["spoke_plugin"],
          "greet.so exports %r, want only spoke_plugin "
          "(-fvisibility=hidden)" % syms)
    # -Wl,--no-undefined: a plugin calling what nobody defines fails to
    # link now, not to load later.
    rc, out, err = run(["cmake", "--build", build, "--target", "undef"])
    check(rc != 0 and "spoke_no_such_function" in out + err,
          "a plugin with an undefined symbol linked (no --no-undefined?):"
          "\n%s%s" % (out, err))
    with serve_installed({"greet.so": read(so)}) as srv:
        check_response(srv.get("/greet/Ada"), 200, "Hello, Ada!\n")


@test
def pkg_config_plugin_builds_and_serves():
    install()
    env = tool_env(PKG_CONFIG_PATH=os.path.join(lib_dir(), "pkgconfig"))
    out, _ = run_ok(["pkg-config", "--cflags", "spoke"], "pkg-config",
                    env=env)
    incs = [os.path.realpath(f[2:]) for f in out.split()
            if f.startswith("-I")]
    check(os.path.join(PREFIX, "include") in incs,
          "pkg-config --cflags spoke lacks -I%s/include: %r" % (PREFIX, out))
    out, _ = run_ok(["pkg-config", "--modversion", "spoke"], "modversion",
                    env=env)
    check(re.match(r"\d+\.\d+", out), "spoke.pc version %r" % out)
    src = os.path.join(WORK, "pc")
    write(os.path.join(src, "hi.c"), GREET_C.replace("@NAME@", "hi"))
    so = os.path.join(src, "hi.so")
    # The documented one-liner.
    run_ok("cc -std=c11 -O2 $(pkg-config --cflags spoke) -shared -fPIC "
           "-Wl,--no-undefined -o hi.so hi.c", "cc with pkg-config",
           cwd=src, env=env, shell=True)
    syms = exported_symbols(so)
    check(syms is None or syms == ["spoke_plugin"],
          "hi.so exports %r, want only spoke_plugin" % syms)
    with serve_installed({"hi.so": read(so)}) as srv:
        check_response(srv.get("/hi/Bob"), 200, "Hello, Bob!\n")


# ---------------------------------------------------------------- new

def readme_block(readme, heading):
    """The first ```sh block after HEADING in README text."""
    at = readme.index(heading)
    m = re.search(r"```sh\n(.*?)```", readme[at:], re.S)
    check(m, "no sh block under %r in the README" % heading)
    return m.group(1)


@test
def spoke_new_builds_checks_and_serves():
    install()
    parent = os.path.join(WORK, "new")
    os.makedirs(parent)
    rc, out, err = spoke(installed_spoke(), ["new", "tick-tock"], cwd=parent)
    check(rc == 0, "spoke new: exit %r\n%s%s" % (rc, out, err))
    proj = os.path.join(parent, "tick-tock")
    for f in ("tick-tock.c", "CMakeLists.txt", "README.md"):
        check(os.path.isfile(os.path.join(proj, f)), "spoke new wrote no %s"
              % f)
    check("-DCMAKE_PREFIX_PATH=" + PREFIX in out,
          "spoke new does not point at its own prefix %s:\n%s"
          % (PREFIX, out))
    check(not err.strip(), "spoke new warned:\n%s" % err)
    cml = read(os.path.join(proj, "CMakeLists.txt")).decode()
    check("find_package(spoke REQUIRED)" in cml and
          "spoke_add_plugin(tick-tock tick-tock.c)" in cml,
          "CMakeLists.txt:\n%s" % cml)

    # Build exactly as the README says.
    readme = read(os.path.join(proj, "README.md")).decode()
    build_cmds = readme_block(readme, "## Build")
    check(PREFIX in build_cmds, "README build lacks the prefix:\n%s"
          % build_cmds)
    run_ok(build_cmds, "the README's build commands", cwd=proj, shell=True)
    so = os.path.join(proj, "build", "tick-tock.so")
    check(os.path.isfile(so), "README build made no build/tick-tock.so")

    rc, out, err = spoke(installed_spoke(), ["check", so])
    check(rc == 0, "spoke check on the new plugin: exit %r\n%s%s"
          % (rc, out, err))
    check(re.search(r"plugin tick-tock 0\.1\.0, SDK ABI \d+\.\d+", out) and
          re.search(r"GET\s+/tick-tock/sync\s+sync$", out, re.M) and
          re.search(r"GET\s+/tick-tock/async\s+async$", out, re.M) and
          out.rstrip().endswith("ok"),
          "spoke check output:\n%s" % out)

    with serve_installed({"tick-tock.so": read(so)}) as srv:
        r = srv.get("/tick-tock/sync?ms=20")
        check_response(r, 200)
        check(r.body.startswith(b"tick-tock: sync, waited 20 ms"),
              "sync body %r" % r.body)
        r = srv.get("/tick-tock/async?ms=20")
        check_response(r, 200)
        check(r.body.startswith(b"tick-tock: async, waited 20 ms"),
              "async body %r" % r.body)
        check(srv.wait_log(r"loaded plugin tick-tock 0\.1\.0", timeout=1),
              "no 'loaded plugin tick-tock' line")


@test
def spoke_new_refuses_bad_names():
    parent = os.path.join(WORK, "badnames")
    os.makedirs(parent)
    for name in ("Hello", "has space", "a/b", "dot.name", "_lead", "x" * 65,
                 "", "all"):
        rc, out, err = spoke(SPOKE_BIN, ["new", name], cwd=parent)
        check(rc == 2, "spoke new %r: exit %r, want 2\n%s%s"
              % (name, rc, out, err))
        check("name" in err, "spoke new %r: no message about the name: %r"
              % (name, err))
    rc, out, err = spoke(SPOKE_BIN, ["new", "--bogus"], cwd=parent)
    check(rc == 2, "spoke new --bogus: exit %r" % rc)
    rc, out, err = spoke(SPOKE_BIN, ["new"], cwd=parent)
    check(rc == 2, "spoke new without a name: exit %r" % rc)
    check_eq(os.listdir(parent), [], "files left by refused spoke new")


@test
def spoke_new_refuses_a_non_empty_dir():
    d = os.path.join(WORK, "taken")
    write(os.path.join(d, "mine.txt"), "keep me\n")
    rc, out, err = spoke(SPOKE_BIN, ["new", "fresh", d])
    check(rc == 1, "spoke new into a non-empty dir: exit %r\n%s%s"
          % (rc, out, err))
    check("not empty" in err, "no 'not empty' message: %r" % err)
    check_eq(sorted(os.listdir(d)), ["mine.txt"], "files in the taken dir")
    check_eq(read(os.path.join(d, "mine.txt")), b"keep me\n", "mine.txt")
    # An empty existing directory is fine, and so is a path to make.
    empty = os.path.join(WORK, "empty")
    os.makedirs(empty)
    rc, out, err = spoke(SPOKE_BIN, ["new", "fresh", empty])
    check(rc == 0, "spoke new into an empty dir: exit %r\n%s" % (rc, err))
    check_eq(sorted(os.listdir(empty)),
             ["CMakeLists.txt", "README.md", "fresh.c"], "files written")
    # ... but not a second time.
    rc, out, err = spoke(SPOKE_BIN, ["new", "fresh", empty])
    check(rc == 1, "second spoke new into the same dir: exit %r" % rc)


# ---------------------------------------------------------------- check

@test
def spoke_check_accepts_good_plugins():
    rundir = os.path.join(WORK, "rundir-good")
    os.makedirs(rundir)
    rc, out, err = spoke(SPOKE_BIN, ["check", "--runtime-dir", rundir,
                                     plugin_path("hello.so")])
    check(rc == 0, "spoke check hello.so: exit %r\n%s%s" % (rc, out, err))
    lines = out.splitlines()
    check(re.match(r".*hello\.so: plugin hello \S+, SDK ABI \d+\.\d+$",
                   lines[0]), "first line %r" % lines[0])
    check(any(re.match(r"\s+GET\s+/hello\s+async$", l) for l in lines) and
          any(re.match(r"\s+GET\s+/hello/sync\s+sync$", l) for l in lines),
          "routes with their modes not listed:\n%s" % out)
    check_eq(lines[-1], "ok", "last line")
    check_eq(os.listdir(rundir), [], "left in the runtime dir")
    # init and fini run: counter has both (and a handover).
    rc, out, err = spoke(SPOKE_BIN, ["check", plugin_path("counter.so"),
                                     plugin_path("sleep.so"),
                                     plugin_path("echo.so")])
    check(rc == 0, "spoke check counter sleep echo: exit %r\n%s%s"
          % (rc, out, err))
    check("init" in out and out.count("\nok") == 3,
          "spoke check output:\n%s" % out)


@test
def spoke_check_gives_the_servers_reasons():
    bad = ["bad_notelf.so", "bad_nodesc.so", "bad_abi.so", "bad_small.so",
           "bad_initfail.so"]
    trunc = plugin_bytes("hello.so")[:1000]
    files = {f: read(plugin_path(f)) for f in bad}
    files["trunc.so"] = trunc
    # What the server says about each, from its log.
    with Server(files=files) as srv:
        logged = {}
        for line in srv.log_lines():
            m = re.search(r"refused plugin (\S+): (.*)$", line)
            if m:
                logged[m.group(1)] = m.group(2)
    check_eq(sorted(logged), sorted(files), "files the server refused")
    d = os.path.join(WORK, "bad")
    os.makedirs(d)
    for name, data in files.items():
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        rc, out, err = spoke(SPOKE_BIN, ["check", path])
        check(rc == 1, "spoke check %s: exit %r, want 1\n%s%s"
              % (name, rc, out, err))
        check_eq(out.strip(), "%s: refused: %s" % (path, logged[name]),
                 "spoke check %s" % name)


@test
def spoke_check_sees_conflicts_between_files():
    rc, out, err = spoke(SPOKE_BIN, ["check", plugin_path("hello.so"),
                                     plugin_path("twin_hello.so")])
    check(rc == 1, "hello + twin_hello: exit %r\n%s%s" % (rc, out, err))
    check(re.search(r"twin_hello\.so: refused: .*GET /hello", out),
          "no conflict refusal for twin_hello:\n%s" % out)
    check(re.search(r"hello\.so: plugin hello ", out),
          "hello not accepted:\n%s" % out)
    # Alone, twin_hello is fine.
    rc, out, err = spoke(SPOKE_BIN, ["check", plugin_path("twin_hello.so")])
    check(rc == 0, "twin_hello alone: exit %r\n%s%s" % (rc, out, err))
    # Two versions of one plugin: the second is refused by name.
    rc, out, err = spoke(SPOKE_BIN, ["check", plugin_path("versioned_v1.so"),
                                     plugin_path("versioned_v2.so")])
    check(rc == 1 and re.search(r"versioned_v2\.so: refused: name "
                                r"\"versioned\" is already used", out),
          "two versions: exit %r\n%s%s" % (rc, out, err))


CRASH_C = r"""
#include <stdlib.h>
#include <spoke.h>
static int h(spoke_request_t *req) { return spoke_response_send(req, "", 0); }
static int crash_init(const spoke_host_t *host, void **state) {
  (void)host;
  (void)state;
  abort();
}
static const spoke_route_t routes[] = { { "GET", "/crash", SPOKE_ASYNC, h } };
SPOKE_PLUGIN(.name = "crash", .version = "1", SPOKE_ROUTES(routes),
             .init = crash_init);
"""


@test
def spoke_check_survives_a_crashing_init():
    install()
    env = tool_env(PKG_CONFIG_PATH=os.path.join(lib_dir(), "pkgconfig"))
    src = os.path.join(WORK, "crash")
    write(os.path.join(src, "crash.c"), CRASH_C)
    run_ok("cc -std=c11 $(pkg-config --cflags spoke) -shared "
           "-Wl,--no-undefined -o crash.so crash.c", "cc crash.so",
           cwd=src, env=env, shell=True)
    rundir = os.path.join(WORK, "rundir-crash")
    os.makedirs(rundir)
    so = os.path.join(src, "crash.so")
    rc, out, err = spoke(SPOKE_BIN, ["check", "--runtime-dir", rundir,
                                     plugin_path("hello.so"), so])
    check(rc == 1, "spoke check on a crashing init: exit %r\n%s%s"
          % (rc, out, err))
    check(re.search(r"hello\.so: plugin hello ", out) and
          re.search(r"crash\.so: crashed: ", out),
          "spoke check output:\n%s" % out)
    check_eq(os.listdir(rundir), [], "left in the runtime dir")


@test
def usage_errors_exit_2():
    for args in (["check"], ["check", "--bogus", "x.so"], ["nonesuch"],
                 ["help", "nonesuch"]):
        rc, out, err = spoke(SPOKE_BIN, args)
        check(rc == 2, "spoke %s: exit %r, want 2\n%s%s"
              % (" ".join(args), rc, out, err))
        check(err.strip(), "spoke %s: no message" % " ".join(args))
    rc, out, err = spoke(SPOKE_BIN, ["help"])
    check(rc == 0 and "spoke new" in out and "spoke check" in out and
          "--listen" in out, "spoke help:\n%s%s" % (out, err))
    for cmd in ("new", "check"):
        rc, out, err = spoke(SPOKE_BIN, [cmd, "--help"])
        check(rc == 0 and out.startswith("usage: spoke " + cmd),
              "spoke %s --help:\n%s%s" % (cmd, out, err))


def tools_missing():
    missing = [t for t in ("cmake", "pkg-config", "cc")
               if shutil.which(t) is None]
    if missing:
        return "not installed: " + ", ".join(missing)
    if not os.path.isfile(os.path.join(BUILD_DIR, "cmake_install.cmake")):
        return "%s is not a CMake build tree" % BUILD_DIR
    return None


if __name__ == "__main__":
    why = tools_missing()
    if why:
        print("SKIP: " + why)
        sys.exit(SKIP)
    main()
