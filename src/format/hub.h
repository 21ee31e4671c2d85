/*
 * hub.h: Hugging Face Hub repo ids ("org/name", "org/name@revision") and the
 * cache folder that `huggingface_hub` (and so `transformers`) keeps them in:
 *
 *   <cache>/models--org--name/refs/<revision>        the commit a branch or tag names
 *   <cache>/models--org--name/snapshots/<commit>/... the repo's files, as symlinks
 *   <cache>/models--org--name/blobs/<etag>           their content (sha256 for LFS
 *                                                     files, the git blob sha1 else)
 *   <cache>/models--org--name/trees/<commit>.json    the file listing of that commit
 *
 * <cache> is found as huggingface_hub's constants.py finds it: $HF_HUB_CACHE,
 * else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
 *
 * This file only reads the cache (offline resolution, as transformers does with
 * HF_HUB_OFFLINE=1); tools/hub_download.h fills it from the network. It knows
 * nothing of model formats beyond telling a GGUF repo (*.gguf files) from a
 * Hugging Face folder (config.json).
 */
#ifndef FC_HUB_H
#define FC_HUB_H

#include <stdbool.h>
#include "base/fc_base.h"

/* Splits "org/name[@revision]" (or "name[@revision]") into a malloc'd repo id
 * and a malloc'd revision (NULL when none was given). Returns false (nothing
 * allocated) when s is not a valid repo id by huggingface_hub's rules: one
 * '/' at most, parts of [A-Za-z0-9_.-] up to 96 characters that neither start
 * nor end with '-' or '.', no "--" or "..". */
bool fc_hub_parse_id(const char *s, char **repo, char **revision);

/* True when p is a safe repo-relative path ("a/b.json"): not empty, not
 * absolute, no "." or ".." or empty component, no backslash or control
 * character. Used for file names from the Hub and for revisions. */
bool fc_hub_safe_path(const char *p);

/* The cache folder (see above), malloc'd. Never NULL. */
char *fc_hub_cache_dir(void);

/* <cache>/models--org--name, malloc'd. */
char *fc_hub_repo_dir(const char *cache, const char *repo);

/* Maps a --model-path value to a local path, malloc'd into *out:
 *  - an existing local file or folder is returned as it is (a local path wins,
 *    as in transformers);
 *  - a repo id "org/name[@revision]" (revision default "main": refs/<rev>, or a
 *    commit hash naming snapshots/<rev>) becomes its snapshot folder, or for
 *    a GGUF repo the file: gguf_file when given, else the repo's only *.gguf;
 *  - anything else is returned as it is (the loader reports it missing).
 * gguf_file (NULL: the one fc_hub_set_gguf_file set) also picks a file
 * inside a local folder. Returns FC_OK, or FC_ERR_IO / FC_ERR_ARG with
 * FC_LOG_ERROR one line saying what is missing and how to get it (repo not in
 * the cache: "fastchat download org/name"; revision not there; several GGUF
 * files and no --gguf-file; the named GGUF file absent).
 *
 * fc_model_load and fc_tokenizer_load call it, so a repo id works wherever a
 * model path does, while the id itself (not the cache path) stays what
 * FastChat's name and template choices see. */
enum fc_status fc_hub_resolve(const char *spec, const char *gguf_file, char **out);

/* The GGUF file a repo id (or folder) resolves to when fc_hub_resolve gets no
 * gguf_file: the CLI's --gguf-file. Process-wide; set it before loading
 * anything (not thread-safe against concurrent resolves). NULL clears it;
 * the string is copied. */
void fc_hub_set_gguf_file(const char *name);
/* The name fc_hub_set_gguf_file set, or NULL. */
const char *fc_hub_get_gguf_file(void);

#endif
