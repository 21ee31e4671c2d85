/*
 * protocol.c: the table of FastChat's error codes (see protocol.h).
 */
#include "serve/protocol.h"

#include <stddef.h>

#include "base/fc_base.h"

static const struct {
    int code;
    const char *name;      /* fastchat/constants.py ErrorCode */
    const char *user_text; /* the web UI's line, NULL: by HTTP status */
} codes[] = {
    {FC_EC_VALIDATION_TYPE_ERROR, "VALIDATION_TYPE_ERROR", "The request was refused"},
    {FC_EC_INVALID_AUTH_KEY, "INVALID_AUTH_KEY", NULL},
    {FC_EC_INCORRECT_AUTH_KEY, "INCORRECT_AUTH_KEY", NULL},
    {FC_EC_NO_PERMISSION, "NO_PERMISSION", NULL},
    {FC_EC_INVALID_MODEL, "INVALID_MODEL", "This model is not served any more (its worker is gone)"},
    {FC_EC_PARAM_OUT_OF_RANGE, "PARAM_OUT_OF_RANGE", "The request was refused"},
    {FC_EC_CONTEXT_OVERFLOW, "CONTEXT_OVERFLOW", "The conversation is too long for this model's context"},
    {FC_EC_RATE_LIMIT, "RATE_LIMIT", "Rate limited"},
    {FC_EC_QUOTA_EXCEEDED, "QUOTA_EXCEEDED", "Rate limited"},
    {FC_EC_ENGINE_OVERLOADED, "ENGINE_OVERLOADED", "Rate limited"},
    {FC_EC_INTERNAL_ERROR, "INTERNAL_ERROR", NULL},
    {FC_EC_CUDA_OUT_OF_MEMORY, "CUDA_OUT_OF_MEMORY", NULL},
    {FC_EC_GRADIO_REQUEST_ERROR, "GRADIO_REQUEST_ERROR", NULL},
    {FC_EC_GRADIO_STREAM_UNKNOWN_ERROR, "GRADIO_STREAM_UNKNOWN_ERROR", NULL},
    {FC_EC_CONTROLLER_NO_WORKER, "CONTROLLER_NO_WORKER", "No worker serves this model right now (the worker is gone)"},
    {FC_EC_CONTROLLER_WORKER_TIMEOUT, "CONTROLLER_WORKER_TIMEOUT",
     "The model's worker did not answer (it stopped or timed out)"},
};

static int find(int code)
{
    for (size_t i = 0; i < FC_ARRAY_LEN(codes); i++)
        if (codes[i].code == code) return (int)i;
    return -1;
}

const char *fc_error_code_type(int code)
{
    return code >= 50000 ? "server_error" : "invalid_request_error";
}

const char *fc_error_code_name(int code)
{
    int i = find(code);
    return i < 0 ? NULL : codes[i].name;
}

const char *fc_error_code_user_text(int code)
{
    int i = find(code);
    return i < 0 ? NULL : codes[i].user_text;
}
