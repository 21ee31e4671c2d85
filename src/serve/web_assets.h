/*
 * web_assets.h: the files of the web UI embedded in the binary at build time
 * (scripts/embed_web.sh writes build/gen/web_assets.c from web/ and the Debian
 * JavaScript packages: marked, highlight.js, KaTeX and its fonts, DOMPurify).
 * Read-only, static storage; every file is followed by a NUL byte.
 */
#ifndef FC_WEB_ASSETS_H
#define FC_WEB_ASSETS_H

typedef struct fc_web_asset {
    const char *path;        /* "/web/static/app.js" */
    const char *mime;        /* Content-Type */
    const char *start, *end; /* the bytes, [start, end) */
} fc_web_asset;

extern const fc_web_asset fc_web_assets[];
extern const int fc_web_n_assets;

#endif
