/*
 * template_pick.h: which FastChat conversation template serves a model.
 *
 * FastChat's model_worker reports `get_conv_template(--conv-template)` when
 * the flag is given, else `get_conversation_template(model_path)` (the model
 * adapters). A model no adapter knows gets the catch-all "one_shot" there,
 * which is wrong for most modern chat models; here such a model (or any model
 * with --conv-template auto) gets a template built from its own chat
 * template when FastChat can express it:
 *   ChatML (<|im_start|>: SmolLM2, Qwen2, Hermes) -> a CHATML-style template
 *     named "chatml" with the model's default system message, stop "<|im_end|>";
 *   Llama 3 headers (<|start_header_id|>) -> "llama-3";
 *   [INST] -> "llama-2";
 * otherwise the adapter's choice stands.
 *
 * Shared by the CLI chat, `judge gen-answer` and the worker so all pick alike.
 */
#ifndef FC_TEMPLATE_PICK_H
#define FC_TEMPLATE_PICK_H

#include "conv.h"

struct fc_tokenizer;

/* name: a registered template name, "auto", or NULL (auto without forcing
 * the model's own template over a known adapter). model_path: the path the
 * adapters match (a GGUF file or a folder). tok: the model's tokenizer (its
 * chat template is read), may be NULL. Returns a new conversation (free with
 * fc_conv_free), or NULL (logged) for an unknown name. */
fc_conv *fc_template_pick(const char *name, const char *model_path, const struct fc_tokenizer *tok);

#endif
