/*
 * cli_flags.c: the flag callbacks several subcommands share (base/flags.h
 * FC_FLAG_FUNC entries): -v/--verbose, the CORS lists given as JSON, and
 * comma-separated lists such as --api-keys; and the API server's access
 * flags that `api` and `serve` share.
 */
#include <stdlib.h>

#include "base/fc_base.h"
#include "cli.h"
#include "serve/openai_api.h"

const char *fc_cli_flag_verbose(const fc_flag *f, const char *v, void *dst)
{
    (void)f, (void)v, (void)dst;
    fc_log_set_level(FC_LOG_LEVEL_INFO);
    return NULL;
}

const char *fc_cli_flag_json_list(const fc_flag *f, const char *v, void *dst)
{
    char **out = dst;
    free(*out);
    *out = fc_cli_json_list_csv(f->names, v);
    return NULL;
}

const char *fc_cli_flag_csv(const fc_flag *f, const char *v, void *dst)
{
    (void)f;
    fc_cli_csv *l = dst;
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = fc_cli_split_csv(v, &l->n);
    return NULL;
}

void fc_cli_csv_free(fc_cli_csv *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void fc_cli_api_access_apply(const fc_cli_api_access *a, fc_openai_api_params *p)
{
    p->api_keys = (const char *const *)a->keys.v;
    p->n_api_keys = a->keys.n;
    p->allow_origins = a->origins;
    p->allow_methods = a->methods;
    p->allow_headers = a->headers;
    p->allow_credentials = a->credentials;
}

void fc_cli_api_access_free(fc_cli_api_access *a)
{
    fc_cli_csv_free(&a->keys);
    free(a->origins);
    free(a->methods);
    free(a->headers);
    a->origins = a->methods = a->headers = NULL;
}
