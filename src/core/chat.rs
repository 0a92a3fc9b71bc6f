//! Chat Completions messages and tools, and the conversion from Responses items to messages.
//! The JSON shape is llama-stack's `OpenAIMessageParam` union (discriminated by `role`), which is also
//! the OpenAI wire shape, so the driver can validate it straight into llama-stack's classes.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::error::{CoreError, Result};
use super::items::{Content, ContentPart, Item, Role};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ChatPart {
    #[serde(rename = "text")]
    Text { text: String },
    #[serde(rename = "image_url")]
    ImageUrl { image_url: ImageUrl },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageUrl {
    pub url: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<ChatPart>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallFunction {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    pub index: u32,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: ToolCallFunction,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    User {
        content: ChatContent,
    },
    System {
        content: ChatContent,
    },
    Developer {
        content: ChatContent,
    },
    Assistant {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ChatContent>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_calls: Option<Vec<ToolCall>>,
        /// The model's reasoning sent back (vLLM / DeepSeek style), only when the host asks for it
        /// (`ItemsToMessages::include_reasoning`); llama-stack's message class has no such field.
        #[serde(skip_serializing_if = "Option::is_none")]
        reasoning_content: Option<String>,
    },
    Tool {
        content: String,
        tool_call_id: String,
    },
}

fn convert_content(content: &Content) -> ChatContent {
    match content {
        Content::Text(text) => ChatContent::Text(text.clone()),
        Content::Parts(parts) => ChatContent::Parts(
            parts
                .iter()
                .filter_map(|part| match part {
                    ContentPart::InputText { text } | ContentPart::OutputText { text, .. } => {
                        Some(ChatPart::Text { text: text.clone() })
                    }
                    // A refusal replayed is what the assistant said.
                    ContentPart::Refusal { refusal } => Some(ChatPart::Text {
                        text: refusal.clone(),
                    }),
                    // Reasoning travels separately (`reasoning_content`), if at all.
                    ContentPart::ReasoningText { .. } => None,
                    // An image given by file id only has no URL to pass on; llama-stack drops it too.
                    ContentPart::InputImage { detail, image_url } => {
                        image_url.as_ref().map(|url| ChatPart::ImageUrl {
                            image_url: ImageUrl {
                                url: url.clone(),
                                detail: detail.clone(),
                            },
                        })
                    }
                })
                .collect(),
        ),
    }
}

/// How `items_to_messages_with` converts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemsToMessages {
    /// Send `reasoning` items back as `reasoning_content` on the assistant message that follows
    /// them. Off by default: most chat servers reject or ignore the field, and OpenAI-compatible
    /// servers that accept it (vLLM, DeepSeek) do not need it to continue a conversation.
    pub include_reasoning: bool,
}

/// The text a `reasoning` item carries: its `reasoning_text` parts, else its summary texts.
fn reasoning_text(summary: &[Value], content: &[ContentPart]) -> Option<String> {
    let parts: Vec<&str> = content
        .iter()
        .filter_map(|p| match p {
            ContentPart::ReasoningText { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let parts = if parts.is_empty() {
        summary
            .iter()
            .filter_map(|s| s.get("text").and_then(Value::as_str))
            .collect()
    } else {
        parts
    };
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("\n"))
    }
}

fn append_reasoning(slot: &mut Option<String>, text: String) {
    match slot {
        Some(existing) => {
            existing.push('\n');
            existing.push_str(&text);
        }
        None => *slot = Some(text),
    }
}

/// Convert Responses items into chat messages, with the default options (reasoning items are
/// skipped). See `items_to_messages_with`.
pub fn items_to_messages(items: &[Item]) -> Result<Vec<ChatMessage>> {
    items_to_messages_with(items, ItemsToMessages::default())
}

/// Convert Responses items into chat messages.
///
/// Consecutive `function_call` items become one assistant message with several tool calls, which is
/// what a model expects after it asked for parallel calls. Items that record server-side tool work
/// (`web_search_call`, `file_search_call`, `mcp_call`, `mcp_list_tools`) carry no replayable call and
/// result pair, and the model's following message already holds what it learned, so they are skipped:
/// that is what makes `previous_response_id` work after such a response (llama-stack 0.2.12 fails there).
/// `reasoning` items are skipped unless `opts.include_reasoning`, in which case their text rides on
/// the next assistant message as `reasoning_content` (a reasoning item with no assistant message
/// after it is dropped). Refusal parts become assistant text. A `compaction` item becomes an
/// assistant message carrying its summary.
pub fn items_to_messages_with(items: &[Item], opts: ItemsToMessages) -> Result<Vec<ChatMessage>> {
    let mut messages: Vec<ChatMessage> = Vec::with_capacity(items.len());
    // Reasoning waiting for the assistant message it belongs to.
    let mut pending_reasoning: Option<String> = None;
    for item in items {
        match item {
            Item::Message { content, role, .. } => {
                let content = convert_content(content);
                messages.push(match role {
                    Role::User => ChatMessage::User { content },
                    Role::System => ChatMessage::System { content },
                    Role::Developer => ChatMessage::Developer { content },
                    Role::Assistant => ChatMessage::Assistant {
                        content: Some(content),
                        tool_calls: None,
                        reasoning_content: pending_reasoning.take(),
                    },
                });
            }
            Item::FunctionCall {
                arguments,
                call_id,
                name,
                namespace,
                ..
            } => push_tool_call(
                &mut messages,
                &mut pending_reasoning,
                call_id,
                chat_tool_name(namespace.as_deref(), name),
                arguments.clone(),
            ),
            Item::CustomToolCall {
                call_id,
                input,
                name,
                namespace,
                ..
            } => push_tool_call(
                &mut messages,
                &mut pending_reasoning,
                call_id,
                chat_tool_name(namespace.as_deref(), name),
                custom_arguments(input),
            ),
            Item::CustomToolCallOutput {
                call_id, output, ..
            } => messages.push(ChatMessage::Tool {
                content: output.clone(),
                tool_call_id: call_id.clone(),
            }),
            // A client-executed tool search is a call of the chat function `tool_search` and its answer.
            Item::ToolSearchCall {
                id,
                call_id,
                arguments,
                ..
            } => {
                let call_id = call_id.clone().or_else(|| id.clone()).unwrap_or_default();
                let arguments = match arguments {
                    Value::String(s) => s.clone(),
                    Value::Null => "{}".to_owned(),
                    other => other.to_string(),
                };
                push_tool_call(
                    &mut messages,
                    &mut pending_reasoning,
                    &call_id,
                    TOOL_SEARCH.to_owned(),
                    arguments,
                )
            }
            Item::ToolSearchOutput {
                id, call_id, tools, ..
            } => messages.push(ChatMessage::Tool {
                content: Value::Array(tools.clone()).to_string(),
                tool_call_id: call_id.clone().or_else(|| id.clone()).unwrap_or_default(),
            }),
            Item::FunctionCallOutput {
                call_id, output, ..
            } => messages.push(ChatMessage::Tool {
                content: output.clone(),
                tool_call_id: call_id.clone(),
            }),
            Item::Reasoning {
                summary, content, ..
            } => {
                if opts.include_reasoning {
                    if let Some(text) = reasoning_text(summary, content) {
                        append_reasoning(&mut pending_reasoning, text);
                    }
                }
            }
            // The summary of compacted context is what the assistant knows of it (as OGX sends it).
            Item::Compaction {
                encrypted_content, ..
            } => messages.push(ChatMessage::Assistant {
                content: Some(ChatContent::Text(encrypted_content.clone())),
                tool_calls: None,
                reasoning_content: None,
            }),
            Item::WebSearchCall { .. }
            | Item::FileSearchCall { .. }
            | Item::McpCall { .. }
            | Item::McpListTools { .. }
            | Item::McpApprovalRequest { .. }
            | Item::McpApprovalResponse { .. } => {}
        }
    }
    Ok(messages)
}

/// The chat function a client-executed `tool_search` is offered as.
pub const TOOL_SEARCH: &str = "tool_search";

/// The chat function name of a tool: a namespaced one is `{namespace}__{name}` (chat function names
/// have no room for a separate namespace), or its short form (`short_chat_name`) when that is longer
/// than OpenAI allows (64) or has characters other than `a-zA-Z0-9_-`. The same pair always gives the
/// same name, so the catalog maps a call back and a replayed call is named as the tool is offered.
pub fn chat_tool_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => {
            let joined = format!("{ns}__{name}");
            if joined.len() <= MAX_CHAT_NAME && joined.bytes().all(chat_name_byte) {
                joined
            } else {
                short_chat_name(ns, name)
            }
        }
        None => name.to_owned(),
    }
}

/// OpenAI's limit on a chat function's name (pattern `^[a-zA-Z0-9_-]{1,64}$`).
pub const MAX_CHAT_NAME: usize = 64;

fn chat_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `{namespace}__{name}` within 64 characters of `a-zA-Z0-9_-`: each part with other characters as
/// `_`, the name cut to 40 and the namespace to what is left, then `_` and 10 hex digits of a hash
/// (FNV-1a, stable across versions) of the exact pair, which tells apart pairs that cut alike.
fn short_chat_name(namespace: &str, name: &str) -> String {
    const HASH_DIGITS: usize = 10;
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii() && chat_name_byte(c as u8) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut name_part = clean(name);
    name_part.truncate(40);
    let mut ns_part = clean(namespace);
    // 64 = namespace + "__" + name + "_" + hash; the parts are ASCII, so any cut is a char boundary.
    ns_part.truncate(MAX_CHAT_NAME - HASH_DIGITS - 3 - name_part.len());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in namespace.bytes().chain([0]).chain(name.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let digest = format!("{hash:016x}");
    format!("{ns_part}__{name_part}_{}", &digest[..HASH_DIGITS])
}

/// A custom tool's free-form input as the arguments of its chat function (one string parameter `input`).
pub fn custom_arguments(input: &str) -> String {
    serde_json::json!({ "input": input }).to_string()
}

/// The free-form input back out of a custom tool's chat-function arguments: the `input` string when the
/// arguments are such an object, else the arguments as the model wrote them.
pub fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(obj)) => match obj.get("input") {
            Some(Value::String(s)) => s.clone(),
            _ => arguments.to_owned(),
        },
        _ => arguments.to_owned(),
    }
}

/// The chat function a `custom` tool is offered as: one string parameter `input`, the grammar (if any)
/// described to the model in the description.
pub fn custom_tool(name: &str, description: Option<&str>, format: Option<&Value>) -> Value {
    let mut input = Map::new();
    input.insert("type".into(), Value::from("string"));
    let mut about = String::from("The tool's free-form input.");
    if let Some(Value::Object(f)) = format {
        if f.get("type").and_then(Value::as_str) == Some("grammar") {
            let syntax = f.get("syntax").and_then(Value::as_str).unwrap_or("lark");
            let definition = f
                .get("definition")
                .and_then(Value::as_str)
                .unwrap_or_default();
            about =
                format!("The tool's input, which must match this {syntax} grammar:\n{definition}");
        }
    }
    input.insert("description".into(), Value::from(about));
    let parameters = serde_json::json!({
        "type": "object",
        "properties": { "input": Value::Object(input) },
        "required": ["input"],
        "additionalProperties": false,
    });
    function_tool(name, description, Some(&parameters), None)
}

/// Append one tool call to the assistant message that holds the previous ones, or start one.
fn push_tool_call(
    messages: &mut Vec<ChatMessage>,
    pending_reasoning: &mut Option<String>,
    call_id: &str,
    name: String,
    arguments: String,
) {
    let call = |index| ToolCall {
        index,
        id: call_id.to_owned(),
        kind: "function",
        function: ToolCallFunction { name, arguments },
    };
    match messages.last_mut() {
        Some(ChatMessage::Assistant {
            tool_calls: Some(calls),
            reasoning_content,
            ..
        }) => {
            let index = calls.len() as u32;
            calls.push(call(index));
            if let Some(text) = pending_reasoning.take() {
                append_reasoning(reasoning_content, text);
            }
        }
        _ => messages.push(ChatMessage::Assistant {
            content: None,
            tool_calls: Some(vec![call(0)]),
            reasoning_content: pending_reasoning.take(),
        }),
    }
}

/// The chat tool definition of a function tool given in the request.
pub fn function_tool(
    name: &str,
    description: Option<&str>,
    parameters: Option<&Value>,
    strict: Option<bool>,
) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), Value::String(name.to_owned()));
    if let Some(d) = description {
        function.insert("description".into(), Value::String(d.to_owned()));
    }
    function.insert(
        "parameters".into(),
        parameters
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    );
    if let Some(strict) = strict {
        function.insert("strict".into(), Value::Bool(strict));
    }
    json!({"type": "function", "function": function})
}

/// The chat tool definition of a llama-stack `ToolDef` (from `get_tool` or an MCP listing): its
/// `parameters` is a list of `{name, parameter_type, description, required, default}`.
pub fn tooldef_to_chat_tool(name: &str, tooldef: &Value) -> Result<Value> {
    let description = tooldef.get("description").and_then(Value::as_str);
    let mut properties = Map::new();
    let mut required = Vec::new();
    if let Some(params) = tooldef.get("parameters").and_then(Value::as_array) {
        for (i, param) in params.iter().enumerate() {
            let pname = param.get("name").and_then(Value::as_str).ok_or_else(|| {
                CoreError::invalid(format!("tool '{name}'.parameters[{i}].name"), "is required")
            })?;
            let mut prop = Map::new();
            let ptype = param
                .get("parameter_type")
                .and_then(Value::as_str)
                .unwrap_or("string");
            prop.insert("type".into(), Value::String(ptype.to_owned()));
            if let Some(d) = param.get("description").and_then(Value::as_str) {
                prop.insert("description".into(), Value::String(d.to_owned()));
            }
            if let Some(default) = param.get("default").filter(|d| !d.is_null()) {
                prop.insert("default".into(), default.clone());
            }
            if param
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(true)
            {
                required.push(Value::String(pname.to_owned()));
            }
            properties.insert(pname.to_owned(), Value::Object(prop));
        }
    }
    let mut function = Map::new();
    function.insert("name".into(), Value::String(name.to_owned()));
    if let Some(d) = description {
        function.insert("description".into(), Value::String(d.to_owned()));
    }
    function.insert(
        "parameters".into(),
        json!({"type": "object", "properties": properties, "required": required}),
    );
    Ok(json!({"type": "function", "function": function}))
}

/// The chat tool definition of an MCP tool listed by its server (`input_schema` is JSON Schema).
pub fn mcp_tool_to_chat_tool(name: &str, description: Option<&str>, input_schema: &Value) -> Value {
    function_tool(name, description, Some(input_schema), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::items::parse_input;

    fn valid_chat_name(n: &str) -> bool {
        !n.is_empty() && n.len() <= MAX_CHAT_NAME && n.bytes().all(chat_name_byte)
    }

    #[test]
    fn namespaced_chat_names_fit_openais_limit() {
        assert_eq!(chat_tool_name(Some("agents"), "spawn"), "agents__spawn");
        assert_eq!(chat_tool_name(None, "x.y"), "x.y");
        let ns = "mcp_server_with_a_really_quite_long_name";
        let name = "and_a_tool_whose_name_is_long_as_well";
        let short = chat_tool_name(Some(ns), name);
        assert!(valid_chat_name(&short), "{short}");
        assert_eq!(short.len(), MAX_CHAT_NAME);
        assert!(short.starts_with("mcp_server_"), "{short}");
        assert!(
            short.contains("__and_a_tool_whose_name_is_long_as_well_"),
            "{short}"
        );
        // Deterministic, and pairs that cut or clean alike still differ.
        assert_eq!(chat_tool_name(Some(ns), name), short);
        assert_ne!(chat_tool_name(Some(ns), &format!("{name}2")), short);
        assert_ne!(chat_tool_name(Some(&format!("{ns}2")), name), short);
        let dotted = chat_tool_name(Some("files"), "read.v2");
        let spaced = chat_tool_name(Some("files"), "read v2");
        assert!(valid_chat_name(&dotted) && valid_chat_name(&spaced));
        assert!(dotted.starts_with("files__read_v2_"), "{dotted}");
        assert_ne!(dotted, spaced);
        let unicode = chat_tool_name(Some("outils"), "créer");
        assert!(valid_chat_name(&unicode), "{unicode}");
        // Exactly 64 is kept as it is.
        let n = "n".repeat(64 - "ns__".len());
        assert_eq!(chat_tool_name(Some("ns"), &n), format!("ns__{n}"));
        let long = chat_tool_name(Some(&"a".repeat(300)), &"b".repeat(300));
        assert!(valid_chat_name(&long), "{long}");
    }

    #[test]
    fn roles_and_parts_convert() {
        let items = parse_input(&json!([
            {"role": "system", "content": "sys"},
            {"role": "developer", "content": "dev"},
            {"role": "user", "content": [{"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "http://i/x.png", "detail": "low"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
        ]))
        .unwrap();
        let msgs = serde_json::to_value(items_to_messages(&items).unwrap()).unwrap();
        assert_eq!(
            msgs,
            json!([
                {"role": "system", "content": "sys"},
                {"role": "developer", "content": "dev"},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "http://i/x.png", "detail": "low"}}]},
                {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            ])
        );
    }

    #[test]
    fn function_calls_group_and_outputs_follow() {
        let items = parse_input(&json!([
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "a", "name": "w", "arguments": "{\"c\":1}"},
            {"type": "function_call", "call_id": "b", "name": "w", "arguments": "{\"c\":2}"},
            {"type": "function_call_output", "call_id": "a", "output": "sun"},
            {"type": "function_call_output", "call_id": "b", "output": "rain"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        ]))
        .unwrap();
        let msgs = serde_json::to_value(items_to_messages(&items).unwrap()).unwrap();
        assert_eq!(msgs.as_array().unwrap().len(), 4);
        assert_eq!(msgs[1]["tool_calls"][1]["id"], "b");
        assert_eq!(msgs[1]["tool_calls"][1]["index"], 1);
        assert_eq!(
            msgs[2],
            json!({"role": "tool", "content": "sun", "tool_call_id": "a"})
        );
    }

    #[test]
    fn tooldef_becomes_json_schema() {
        let def = json!({"name": "web_search", "description": "search", "parameters": [
            {"name": "query", "parameter_type": "string", "description": "q", "required": true, "default": null},
            {"name": "n", "parameter_type": "integer", "required": false, "default": 3}]});
        let tool = tooldef_to_chat_tool("web_search", &def).unwrap();
        assert_eq!(tool["function"]["parameters"]["required"], json!(["query"]));
        assert_eq!(
            tool["function"]["parameters"]["properties"]["n"],
            json!({"type": "integer", "default": 3})
        );
    }

    #[test]
    fn reasoning_is_skipped_unless_asked_for_and_refusals_are_text() {
        let items = parse_input(&json!([
            {"role": "user", "content": "q"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "sum"}],
             "content": [{"type": "reasoning_text", "text": "think"}]},
            {"type": "function_call", "call_id": "a", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "a", "output": "sun"},
            {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "only a summary"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
        ]))
        .unwrap();
        let plain = serde_json::to_value(items_to_messages(&items).unwrap()).unwrap();
        assert_eq!(
            plain,
            json!([
                {"role": "user", "content": "q"},
                {"role": "assistant", "tool_calls": [{"index": 0, "id": "a", "type": "function",
                    "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "content": "sun", "tool_call_id": "a"},
                {"role": "assistant", "content": [{"type": "text", "text": "I can't."}]},
            ])
        );
        let with = serde_json::to_value(
            items_to_messages_with(
                &items,
                ItemsToMessages {
                    include_reasoning: true,
                },
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(with[1]["reasoning_content"], "think");
        assert_eq!(with[3]["reasoning_content"], "only a summary");
        assert_eq!(
            with[3]["content"],
            json!([{"type": "text", "text": "I can't."}])
        );
    }
}
