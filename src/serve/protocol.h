/*
 * protocol.h: FastChat's error codes and server messages, defined once for
 * every serving endpoint (worker, controller, OpenAI API, Responses API,
 * Ollama API, web UI).
 *
 * Mirrors fastchat/constants.py: ErrorCode (an IntEnum sent as "error_code"
 * in a worker's chunks and as "code" in the API server's ErrorResponse) and
 * SERVER_ERROR_MSG (the text of every server-side failure the web UI shows).
 * The table in protocol.c adds, per code, the OpenAI error "type" and the
 * short line the web UI shows a user. Not here: the HTTP status each route
 * picks (routes differ, as FastChat's do).
 */
#ifndef FC_PROTOCOL_H
#define FC_PROTOCOL_H

/* fastchat/constants.py ErrorCode */
enum fc_error_code {
    FC_EC_OK = 0,
    FC_EC_VALIDATION_TYPE_ERROR = 40001,
    FC_EC_INVALID_AUTH_KEY = 40101,
    FC_EC_INCORRECT_AUTH_KEY = 40102,
    FC_EC_NO_PERMISSION = 40103,
    FC_EC_INVALID_MODEL = 40301,
    FC_EC_PARAM_OUT_OF_RANGE = 40302,
    FC_EC_CONTEXT_OVERFLOW = 40303,
    FC_EC_RATE_LIMIT = 42901,
    FC_EC_QUOTA_EXCEEDED = 42902,
    FC_EC_ENGINE_OVERLOADED = 42903,
    FC_EC_INTERNAL_ERROR = 50001,
    FC_EC_CUDA_OUT_OF_MEMORY = 50002,
    FC_EC_GRADIO_REQUEST_ERROR = 50003,
    FC_EC_GRADIO_STREAM_UNKNOWN_ERROR = 50004,
    FC_EC_CONTROLLER_NO_WORKER = 50005,
    FC_EC_CONTROLLER_WORKER_TIMEOUT = 50006,
};

/* fastchat/constants.py SERVER_ERROR_MSG */
#define FC_SERVER_ERROR_MSG "**NETWORK ERROR DUE TO HIGH TRAFFIC. PLEASE REGENERATE OR REFRESH THIS PAGE.**"

/* The OpenAI error "type" of a code: "server_error" for 5xxxx, else
 * "invalid_request_error". Static string. */
const char *fc_error_code_type(int code);

/* FastChat's name of a code ("CONTEXT_OVERFLOW"), or NULL for a code not in
 * ErrorCode. Static string. */
const char *fc_error_code_name(int code);

/* The line the web UI shows a user for a code ("The conversation is too
 * long for this model's context"), or NULL where the code alone does not
 * say (the caller falls back on the HTTP status). Static string. */
const char *fc_error_code_user_text(int code);

#endif
