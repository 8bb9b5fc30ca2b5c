// C++ entry points over llama.cpp common/ that speak JSON text, so the Cython
// side handles plain std::string values instead of mirroring common's many
// C++ structs. Every function may throw std::exception; Cython declares them
// `except +` and they surface as Python exceptions.
#pragma once

#include <string>

struct llama_model;
struct common_chat_templates;

namespace pyllama {

// Build the chat templates for a model. `override_template` empty: the
// model's own template (falling back to ChatML when it has none).
common_chat_templates * chat_templates_init(const llama_model * model,
                                            const std::string & override_template,
                                            const std::string & bos_token,
                                            const std::string & eos_token);
void chat_templates_free(common_chat_templates * tmpls);
std::string chat_templates_source(const common_chat_templates * tmpls, const std::string & variant);
// {"<capability>": bool, ...} as detected from the Jinja source.
std::string chat_templates_caps(const common_chat_templates * tmpls);
bool chat_templates_support_thinking(const common_chat_templates * tmpls);

// inputs_json: {"messages": [...OpenAI-style...], "tools": [...], "tool_choice": "auto",
//   "add_generation_prompt": true, "enable_thinking": true, "json_schema": "...",
//   "grammar": "...", "parallel_tool_calls": false, "reasoning_format": "auto",
//   "chat_template_kwargs": {"k": <json>}}
// returns {"prompt", "format", "grammar", "grammar_lazy", "grammar_triggers",
//   "preserved_tokens", "additional_stops", "generation_prompt", "parser",
//   "supports_thinking", "thinking_start_tag", "thinking_end_tags"}
std::string chat_templates_apply(const common_chat_templates * tmpls, const std::string & inputs_json);

// params_json: {"format": int, "generation_prompt": str, "parser": str,
//   "reasoning_format": str, "parse_tool_calls": bool, "reasoning_in_content": bool}
// returns {"role", "content", "reasoning_content", "tool_calls": [{"name", "arguments", "id"}]}
std::string chat_parse(const std::string & text, bool is_partial, const std::string & params_json);

std::string schema_to_grammar(const std::string & schema_json, bool force_gbnf);

}  // namespace pyllama
