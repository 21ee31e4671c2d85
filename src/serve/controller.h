/*
 * controller.h: FastChat's controller (fastchat/serve/controller.py): the
 * registry of model workers, which model names each serves, their
 * heartbeats, and the dispatch of a model name to one worker address.
 *
 * HTTP endpoints (POST with JSON unless noted), bodies as FastChat's:
 *   /register_worker        {worker_name, check_heart_beat, worker_status?, multimodal?} -> null
 *                           (worker_status null or absent: the controller asks the
 *                           worker's /worker_get_status, 5 s timeout; a worker that
 *                           does not answer is not registered)
 *   /refresh_all_workers    -> null; re-asks every worker its status, drops the dead
 *   /list_models, /list_multimodal_models, /list_language_models -> {"models": [...]}
 *   /get_worker_address     {model} -> {"address": url or ""}
 *   /receive_heart_beat     {worker_name, queue_length} -> {"exist": bool}
 *   /worker_generate_stream the controller acting as a worker: dispatches by
 *                           params.model and relays the NUL-delimited stream;
 *                           {text: SERVER_ERROR_MSG, error_code: 50005}\0 when no
 *                           worker serves the model, 50006 when the worker fails
 *   /worker_get_status      {model_names (sorted union), speed (sum), queue_length (sum)}
 *                           of the live workers, so a controller can join a parent one
 *   GET /test_connection    "success"
 *
 * Dispatch: "lottery" picks a worker at random with probability proportional
 * to its speed; "shortest_queue" (FastChat's default) picks the smallest
 * queue_length / speed and counts the pick into that worker's queue length
 * until its next heartbeat reports the real one.
 *
 * Liveness: a sweeper thread drops the workers registered with
 * check_heart_beat whose last heartbeat is older than the expiration
 * (FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION, 90 s). FastChat sweeps once per
 * expiration period; we sweep every min(expiration, 10 s) with the same age
 * rule, so a dead worker leaves sooner. /refresh_all_workers drops the workers
 * that do not answer their status request.
 *
 * Loops (not in FastChat): a worker_name that is this controller's own
 * address (its port on localhost, 127.x, 0.0.0.0, ::1 or its --host) is
 * refused with 400. Every call the controller makes to a worker (status,
 * relay) carries the header X-FastChat-Relay with the ids of the controllers
 * it went through; a controller answers 508 (and, on the relay, the 50006
 * chunk) to a call that already went through itself or through 2
 * controllers, so one parent controller above a child still works but a loop
 * (through any alias) ends after one hop: one request causes at most a few
 * threads and connections.
 *
 * Frozen workers: a relay that receives nothing for 10 s asks the worker's
 * /worker_get_status (5 s timeout); a worker that does not answer (stopped,
 * e.g. SIGSTOP) is dropped from the registry and the client gets the 50006
 * chunk, instead of waiting FASTCHAT_WORKER_API_TIMEOUT (100 s).
 *
 * Deliberate differences from FastChat: malformed request bodies get HTTP 400
 * with {"detail": ...} instead of a 500; with no worker for the model, the
 * /worker_generate_stream relay sends the 50005 chunk and stops (FastChat then
 * still tries a request to "" and sends a second, 50006, chunk);
 * /refresh_all_workers keeps workers that register while it runs.
 *
 * Threads: all endpoints run on the HTTP server's threads; the registry is
 * guarded by one mutex that is never held across a network call. Each relay
 * is written by its handler's thread (http.h gives each request its own).
 */
#ifndef FC_CONTROLLER_H
#define FC_CONTROLLER_H

#include <stdbool.h>

typedef struct fc_controller fc_controller;

enum fc_dispatch {
    FC_DISPATCH_LOTTERY = 0,
    FC_DISPATCH_SHORTEST_QUEUE = 1,
};

/* "lottery" / "shortest_queue" -> the method; -1 for anything else. */
int fc_dispatch_from_str(const char *s);
const char *fc_dispatch_name(enum fc_dispatch d);

typedef struct fc_controller_params {
    const char *host;       /* listen address (an IP); NULL: all interfaces */
    int port;               /* 0: any free port (see fc_controller_port) */
    enum fc_dispatch dispatch;
    /* Heartbeat expiration in seconds; <= 0: FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION
     * from the environment, else 90. */
    double heart_beat_expiration_s;
} fc_controller_params;

/* Creates the controller and starts serving. NULL on failure (logged: the
 * port is in use, ...). Free with fc_controller_free. */
fc_controller *fc_controller_start(const fc_controller_params *p);
/* The bound port. */
int fc_controller_port(const fc_controller *c);
/* Stops serving, waits for running relays to notice and frees everything.
 * NULL is a no-op. */
void fc_controller_free(fc_controller *c);

#endif
