/* frame.c: a request's line rules, checked on the raw bytes.
 *
 * Debian 12's llhttp 8.1.0 accepts request-smuggling shapes fixed only in
 * 8.1.1/8.1.2, and a system llhttp may be built without strict mode. So
 * after each llhttp_execute, and before the request is dispatched, the
 * bytes llhttp consumed go through this scanner: in the head, in chunk
 * size lines and in the trailer section, lines end in CRLF only (no bare
 * CR, no bare LF), and no header or trailer line starts with SP or HTAB
 * (obs-fold); chunk data must be followed by CRLF. It follows the body's
 * framing as llhttp saw it (Content-Length or chunked, recorded by
 * on_headers_complete), so it knows where lines are. Blank lines before a
 * request line are allowed (RFC 9112, 2.2). Chunk extensions are ignored
 * (RFC 9112 §7.1.1) and buffered nowhere, but their bytes are bounded:
 * past CHUNK_EXT_MAX of them in one body the request is refused, so a
 * client cannot keep a connection busy on extensions with no body
 * progress (the flaw behind Node.js's CVE-2024-22019). In the chunk
 * states, line_len counts those bytes for the whole body. One scanner per
 * connection, rewound after each request; loop thread only.
 */
#include "http/http.h"

/* Chunk-extension bytes (all that follows the hex size on size lines)
 * allowed in one chunked body: as Node.js's 16 KiB. */
#define CHUNK_EXT_MAX (16 * 1024)

enum {
  SC_HEAD = 0,     /* request line and header lines */
  SC_BODY,         /* Content-Length bytes */
  SC_CHUNK_SIZE,   /* "1a;ext" up to CRLF */
  SC_CHUNK_DATA,   /* chunk bytes */
  SC_CHUNK_CR,     /* the CR after chunk data */
  SC_CHUNK_LF,     /* the LF after it */
  SC_TRAILERS,     /* trailer lines up to the empty line */
  SC_DONE          /* the request is complete */
};

void spoke__frame_reset(spoke__frame_scan_t *sc) {
  sc->state = SC_HEAD;
  sc->prev_cr = 0;
  sc->seen_line = 0;
  sc->in_ext = 0;
  sc->line_len = 0;
  sc->remaining = 0;
  sc->chunk = 0;
}

/* A line of the head or the trailers ended (its CRLF is behind us). */
static void line_ended(spoke__frame_scan_t *sc, spoke__body_kind_t kind,
                       uint64_t length) {
  if (sc->line_len == 0 && (sc->seen_line || sc->state == SC_TRAILERS)) {
    if (sc->state == SC_TRAILERS || kind == SPOKE__BODY_NONE) {
      sc->state = SC_DONE;
    } else if (kind == SPOKE__BODY_LENGTH) {
      sc->state = SC_BODY;
      sc->remaining = length;
    } else {
      sc->state = SC_CHUNK_SIZE;
      sc->chunk = 0;
      sc->in_ext = 0;
    }
  }
  sc->seen_line |= sc->line_len > 0;
  sc->line_len = 0;
}

int spoke__frame_scan(spoke__frame_scan_t *sc, spoke__body_kind_t kind,
                      uint64_t length, const char *data, size_t len) {
  size_t i = 0;
  while (i < len) {
    char c = data[i];
    switch (sc->state) {
      case SC_HEAD:
      case SC_TRAILERS:
        if (sc->prev_cr) {
          if (c != '\n')
            return -1; /* bare CR */
          sc->prev_cr = 0;
          line_ended(sc, kind, length);
        } else if (c == '\r') {
          sc->prev_cr = 1;
        } else if (c == '\n') {
          return -1; /* bare LF */
        } else if (sc->line_len++ == 0 && (c == ' ' || c == '\t') &&
                   (sc->seen_line || sc->state == SC_TRAILERS)) {
          return -1; /* obs-fold */
        }
        i++;
        break;
      case SC_BODY: {
        size_t n = len - i < sc->remaining ? len - i : (size_t)sc->remaining;
        i += n;
        sc->remaining -= n;
        if (sc->remaining == 0)
          sc->state = SC_DONE;
        break;
      }
      case SC_CHUNK_SIZE:
        if (sc->prev_cr) {
          if (c != '\n')
            return -1;
          sc->prev_cr = 0;
          if (sc->chunk == 0) {
            sc->state = SC_TRAILERS;
            sc->line_len = 0;
          } else {
            sc->state = SC_CHUNK_DATA;
            sc->remaining = sc->chunk;
          }
        } else if (c == '\r') {
          sc->prev_cr = 1;
        } else if (c == '\n') {
          return -1;
        } else if (!sc->in_ext && spoke__hexval((unsigned char)c) >= 0) {
          if (sc->chunk >> 56)
            return -1; /* llhttp refuses it too: no overflow here */
          sc->chunk =
              sc->chunk * 16 + (uint64_t)spoke__hexval((unsigned char)c);
        } else {
          sc->in_ext = 1; /* ";name=value" or whitespace: llhttp judges */
          if (++sc->line_len > CHUNK_EXT_MAX)
            return -1;
        }
        i++;
        break;
      case SC_CHUNK_DATA: {
        size_t n = len - i < sc->remaining ? len - i : (size_t)sc->remaining;
        i += n;
        sc->remaining -= n;
        if (sc->remaining == 0)
          sc->state = SC_CHUNK_CR;
        break;
      }
      case SC_CHUNK_CR:
        if (c != '\r')
          return -1;
        sc->state = SC_CHUNK_LF;
        i++;
        break;
      case SC_CHUNK_LF:
        if (c != '\n')
          return -1;
        sc->state = SC_CHUNK_SIZE;
        sc->chunk = 0;
        sc->in_ext = 0;
        i++;
        break;
      default: /* SC_DONE: llhttp stopped at the end of the request */
        i = len;
        break;
    }
  }
  return 0;
}
