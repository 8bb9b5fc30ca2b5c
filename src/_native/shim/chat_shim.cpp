#include "chat_shim.h"

#include "chat.h"
#include "json-schema-to-grammar.h"
#include "json.h"

#include <nlohmann/json.hpp>

#include <stdexcept>

using njson = nlohmann::ordered_json;

namespace pyllama {

namespace {

// common's own JSON type, built from our text so nlohmann's type never has
// to match across the library boundary.
common_json to_common(const njson & value) {
    return common_json::parse(value.dump());
}

njson from_common(const common_json & value) {
    return njson::parse(value.dump());
}

std::string string_or(const njson & obj, const char * key, const std::string & fallback) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return fallback;
    }
    if (!it->is_string()) {
        throw std::invalid_argument(std::string("'") + key + "' must be a string");
    }
    return it->get<std::string>();
}

bool bool_or(const njson & obj, const char * key, bool fallback) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return fallback;
    }
    if (!it->is_boolean()) {
        throw std::invalid_argument(std::string("'") + key + "' must be a boolean");
    }
    return it->get<bool>();
}

const char * trigger_type_name(common_grammar_trigger_type type) {
    switch (type) {
        case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:        return "token";
        case COMMON_GRAMMAR_TRIGGER_TYPE_WORD:         return "word";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:      return "pattern";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: return "pattern_full";
    }
    return "unknown";
}

njson parse_object(const std::string & text, const char * what) {
    njson value = njson::parse(text, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded() || !value.is_object()) {
        throw std::invalid_argument(std::string(what) + " must be a JSON object");
    }
    return value;
}

}  // namespace

common_chat_templates * chat_templates_init(const llama_model * model,
                                            const std::string & override_template,
                                            const std::string & bos_token,
                                            const std::string & eos_token) {
    auto ptr = common_chat_templates_init(model, override_template, bos_token, eos_token);
    if (!ptr) {
        throw std::runtime_error("failed to initialise chat templates");
    }
    return ptr.release();
}

void chat_templates_free(common_chat_templates * tmpls) {
    common_chat_templates_free(tmpls);
}

std::string chat_templates_source(const common_chat_templates * tmpls, const std::string & variant) {
    return common_chat_templates_source(tmpls, variant);
}

std::string chat_templates_caps(const common_chat_templates * tmpls) {
    njson out = njson::object();
    for (const auto & [name, value] : common_chat_templates_get_caps(tmpls)) {
        out[name] = value;
    }
    return out.dump();
}

bool chat_templates_support_thinking(const common_chat_templates * tmpls) {
    return common_chat_templates_support_enable_thinking(tmpls);
}

std::string chat_templates_apply(const common_chat_templates * tmpls, const std::string & inputs_json) {
    const njson in = parse_object(inputs_json, "chat inputs");

    common_chat_templates_inputs inputs;
    auto messages = in.find("messages");
    if (messages == in.end() || !messages->is_array()) {
        throw std::invalid_argument("'messages' must be an array");
    }
    inputs.messages = common_chat_msgs_parse_oaicompat(to_common(*messages));

    auto tools = in.find("tools");
    if (tools != in.end() && !tools->is_null()) {
        if (!tools->is_array()) {
            throw std::invalid_argument("'tools' must be an array");
        }
        inputs.tools = common_chat_tools_parse_oaicompat(to_common(*tools));
    }
    inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(string_or(in, "tool_choice", "auto"));
    inputs.add_generation_prompt = bool_or(in, "add_generation_prompt", true);
    inputs.enable_thinking = bool_or(in, "enable_thinking", true);
    inputs.parallel_tool_calls = bool_or(in, "parallel_tool_calls", false);
    inputs.json_schema = string_or(in, "json_schema", "");
    inputs.grammar = string_or(in, "grammar", "");
    inputs.reasoning_format = common_reasoning_format_from_name(string_or(in, "reasoning_format", "none"));
    inputs.use_jinja = true;

    auto kwargs = in.find("chat_template_kwargs");
    if (kwargs != in.end() && !kwargs->is_null()) {
        if (!kwargs->is_object()) {
            throw std::invalid_argument("'chat_template_kwargs' must be an object");
        }
        for (const auto & [key, value] : kwargs->items()) {
            inputs.chat_template_kwargs[key] = value.dump();
        }
    }

    const common_chat_params params = common_chat_templates_apply(tmpls, inputs);

    njson out;
    out["prompt"] = params.prompt;
    out["format"] = static_cast<int>(params.format);
    out["format_name"] = common_chat_format_name(params.format);
    out["grammar"] = params.grammar;
    out["grammar_lazy"] = params.grammar_lazy;
    njson triggers = njson::array();
    for (const auto & trigger : params.grammar_triggers) {
        triggers.push_back({
            {"type", trigger_type_name(trigger.type)},
            {"value", trigger.value},
            {"token", trigger.token},
        });
    }
    out["grammar_triggers"] = triggers;
    out["preserved_tokens"] = params.preserved_tokens;
    out["additional_stops"] = params.additional_stops;
    out["generation_prompt"] = params.generation_prompt;
    out["parser"] = params.parser;
    out["supports_thinking"] = params.supports_thinking;
    out["thinking_start_tag"] = params.thinking_start_tag;
    out["thinking_end_tags"] = params.thinking_end_tags;
    return out.dump();
}

std::string chat_parse(const std::string & text, bool is_partial, const std::string & params_json) {
    const njson in = parse_object(params_json, "parser params");

    common_chat_parser_params params;
    auto format = in.find("format");
    if (format != in.end() && !format->is_null()) {
        if (!format->is_number_integer()) {
            throw std::invalid_argument("'format' must be an integer");
        }
        const int value = format->get<int>();
        if (value < 0 || value >= COMMON_CHAT_FORMAT_COUNT) {
            throw std::invalid_argument("unknown chat format " + std::to_string(value));
        }
        params.format = static_cast<common_chat_format>(value);
    }
    params.generation_prompt = string_or(in, "generation_prompt", "");
    params.reasoning_format = common_reasoning_format_from_name(string_or(in, "reasoning_format", "none"));
    params.reasoning_in_content = bool_or(in, "reasoning_in_content", false);
    params.parse_tool_calls = bool_or(in, "parse_tool_calls", true);
    const std::string parser = string_or(in, "parser", "");
    if (!parser.empty()) {
        params.parser.load(parser);
    }

    const common_chat_msg msg = common_chat_parse(text, is_partial, params);

    njson out;
    out["role"] = msg.role.empty() ? "assistant" : msg.role;
    out["content"] = msg.content;
    out["reasoning_content"] = msg.reasoning_content;
    njson calls = njson::array();
    for (const auto & call : msg.tool_calls) {
        calls.push_back({{"name", call.name}, {"arguments", call.arguments}, {"id", call.id}});
    }
    out["tool_calls"] = calls;
    return out.dump();
}

std::string schema_to_grammar(const std::string & schema_json, bool force_gbnf) {
    return json_schema_to_grammar(common_json::parse(schema_json), force_gbnf);
}

}  // namespace pyllama
