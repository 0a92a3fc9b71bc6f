//! Responses API items (input and output share one shape) and tools, parsed from JSON values with
//! errors that name the offending field, and serialised in the shape llama-stack stores.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{CoreError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    System,
    Developer,
    Assistant,
}

impl Role {
    fn parse(value: &str, field: &str) -> Result<Self> {
        match value {
            "user" => Ok(Role::User),
            "system" => Ok(Role::System),
            "developer" => Ok(Role::Developer),
            "assistant" => Ok(Role::Assistant),
            other => Err(CoreError::invalid(
                field,
                format!("unknown message role '{other}' (expected user, system, developer or assistant)"),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ContentPart {
    #[serde(rename = "input_text")]
    InputText { text: String },
    #[serde(rename = "output_text")]
    OutputText {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        annotations: Option<Vec<Value>>,
    },
    #[serde(rename = "input_image")]
    InputImage {
        detail: String,
        #[serde(default)]
        image_url: Option<String>,
    },
    #[serde(rename = "refusal")]
    Refusal { refusal: String },
    #[serde(rename = "reasoning_text")]
    ReasoningText { text: String },
}

impl ContentPart {
    pub fn text(&self) -> Option<&str> {
        match self {
            ContentPart::InputText { text }
            | ContentPart::OutputText { text, .. }
            | ContentPart::ReasoningText { text } => Some(text),
            ContentPart::Refusal { refusal } => Some(refusal),
            ContentPart::InputImage { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One item of a response's input or output. Field order matches what llama-stack writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Item {
    #[serde(rename = "message")]
    Message {
        content: Content,
        role: Role,
        id: Option<String>,
        status: Option<String>,
    },
    #[serde(rename = "function_call")]
    FunctionCall {
        arguments: String,
        call_id: String,
        name: String,
        id: Option<String>,
        status: Option<String>,
    },
    #[serde(rename = "function_call_output")]
    FunctionCallOutput {
        call_id: String,
        output: String,
        id: Option<String>,
        status: Option<String>,
    },
    #[serde(rename = "web_search_call")]
    WebSearchCall { id: String, status: String },
    #[serde(rename = "file_search_call")]
    FileSearchCall {
        id: String,
        queries: Vec<String>,
        status: String,
        results: Option<Vec<Value>>,
    },
    #[serde(rename = "mcp_call")]
    McpCall {
        id: String,
        arguments: String,
        name: String,
        server_label: String,
        error: Option<String>,
        output: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
    },
    #[serde(rename = "mcp_list_tools")]
    McpListTools {
        id: String,
        server_label: String,
        tools: Vec<Value>,
    },
    #[serde(rename = "reasoning")]
    Reasoning {
        id: String,
        summary: Vec<Value>,
        content: Vec<ContentPart>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
    },
}

impl Item {
    pub fn id(&self) -> Option<&str> {
        match self {
            Item::Message { id, .. }
            | Item::FunctionCall { id, .. }
            | Item::FunctionCallOutput { id, .. } => id.as_deref(),
            Item::WebSearchCall { id, .. }
            | Item::FileSearchCall { id, .. }
            | Item::McpCall { id, .. }
            | Item::McpListTools { id, .. }
            | Item::Reasoning { id, .. } => Some(id),
        }
    }

    /// A user message with one `input_text` part, as llama-stack synthesises for a string input.
    pub fn user_text(text: &str, id: Option<String>) -> Item {
        Item::Message {
            content: Content::Parts(vec![ContentPart::InputText {
                text: text.to_owned(),
            }]),
            role: Role::User,
            id,
            status: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing with field paths. serde's own messages ("unknown variant `x`") do not say *where*, and a
// user with a 40-item input needs to know which item is wrong.

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => Err(CoreError::invalid(format!("{path}.{key}"), "is required")),
        Some(other) => Err(CoreError::invalid(
            format!("{path}.{key}"),
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

fn opt_str_field(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Null) | None => Ok(None),
        Some(other) => Err(CoreError::invalid(
            format!("{path}.{key}"),
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| {
        CoreError::invalid(path, format!("must be an object, got {}", kind_of(value)))
    })
}

fn parse_content_part(value: &Value, path: &str) -> Result<ContentPart> {
    if let Value::String(s) = value {
        // llama-stack accepts bare strings among parts and treats them as text.
        return Ok(ContentPart::InputText { text: s.clone() });
    }
    let obj = as_object(value, path)?;
    let kind = str_field(obj, "type", path)?;
    match kind {
        "input_text" => Ok(ContentPart::InputText {
            text: str_field(obj, "text", path)?.to_owned(),
        }),
        "output_text" => Ok(ContentPart::OutputText {
            text: str_field(obj, "text", path)?.to_owned(),
            annotations: None,
        }),
        "input_image" => {
            let detail = opt_str_field(obj, "detail", path)?.unwrap_or_else(|| "auto".to_owned());
            if !matches!(detail.as_str(), "low" | "high" | "auto") {
                return Err(CoreError::invalid(
                    format!("{path}.detail"),
                    format!("unknown image detail '{detail}' (expected low, high or auto)"),
                ));
            }
            Ok(ContentPart::InputImage {
                detail,
                image_url: opt_str_field(obj, "image_url", path)?,
            })
        }
        other => Err(CoreError::invalid(
            format!("{path}.type"),
            format!("unknown content part type '{other}' (expected input_text, output_text or input_image)"),
        )),
    }
}

fn parse_content(value: Option<&Value>, path: &str) -> Result<Content> {
    match value {
        Some(Value::String(s)) => Ok(Content::Text(s.clone())),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| parse_content_part(p, &format!("{path}.content[{i}]")))
            .collect::<Result<Vec<_>>>()
            .map(Content::Parts),
        Some(Value::Null) | None => {
            Err(CoreError::invalid(format!("{path}.content"), "is required"))
        }
        Some(other) => Err(CoreError::invalid(
            format!("{path}.content"),
            format!(
                "must be a string or a list of content parts, got {}",
                kind_of(other)
            ),
        )),
    }
}

/// Parse one input item. `path` is where it sits in the request, e.g. `input[3]`.
pub fn parse_item(value: &Value, path: &str) -> Result<Item> {
    let obj = as_object(value, path)?;
    // A message may omit `type` (the API's "easy" input message); anything else must say what it is.
    let kind = match obj.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Null) | None if obj.contains_key("role") => "message",
        Some(Value::Null) | None => {
            return Err(CoreError::invalid(
                format!("{path}.type"),
                "is required (an item without a type must be a message with a role)",
            ))
        }
        Some(other) => {
            return Err(CoreError::invalid(
                format!("{path}.type"),
                format!("must be a string, got {}", kind_of(other)),
            ))
        }
    };
    let item = match kind {
        "message" => Item::Message {
            role: Role::parse(str_field(obj, "role", path)?, &format!("{path}.role"))?,
            content: parse_content(obj.get("content"), path)?,
            id: opt_str_field(obj, "id", path)?,
            status: opt_str_field(obj, "status", path)?,
        },
        "function_call" => Item::FunctionCall {
            arguments: opt_str_field(obj, "arguments", path)?.unwrap_or_default(),
            call_id: str_field(obj, "call_id", path)?.to_owned(),
            name: str_field(obj, "name", path)?.to_owned(),
            id: opt_str_field(obj, "id", path)?,
            status: opt_str_field(obj, "status", path)?,
        },
        "function_call_output" => Item::FunctionCallOutput {
            call_id: str_field(obj, "call_id", path)?.to_owned(),
            output: str_field(obj, "output", path)?.to_owned(),
            id: opt_str_field(obj, "id", path)?,
            status: opt_str_field(obj, "status", path)?,
        },
        "web_search_call" => Item::WebSearchCall {
            id: str_field(obj, "id", path)?.to_owned(),
            status: str_field(obj, "status", path)?.to_owned(),
        },
        "file_search_call" => Item::FileSearchCall {
            id: str_field(obj, "id", path)?.to_owned(),
            queries: match obj.get("queries") {
                Some(Value::Array(qs)) => qs.iter().filter_map(|q| q.as_str().map(str::to_owned)).collect(),
                _ => Vec::new(),
            },
            status: str_field(obj, "status", path)?.to_owned(),
            results: match obj.get("results") {
                Some(Value::Array(rs)) => Some(rs.clone()),
                _ => None,
            },
        },
        "mcp_call" => Item::McpCall {
            id: str_field(obj, "id", path)?.to_owned(),
            arguments: opt_str_field(obj, "arguments", path)?.unwrap_or_default(),
            name: str_field(obj, "name", path)?.to_owned(),
            server_label: str_field(obj, "server_label", path)?.to_owned(),
            error: opt_str_field(obj, "error", path)?,
            output: opt_str_field(obj, "output", path)?,
            status: opt_str_field(obj, "status", path)?,
        },
        "mcp_list_tools" => Item::McpListTools {
            id: str_field(obj, "id", path)?.to_owned(),
            server_label: str_field(obj, "server_label", path)?.to_owned(),
            tools: match obj.get("tools") {
                Some(Value::Array(ts)) => ts.clone(),
                _ => Vec::new(),
            },
        },
        other => {
            return Err(CoreError::invalid(
                format!("{path}.type"),
                format!(
                    "unknown input item type '{other}' (expected message, function_call, function_call_output, \
                     web_search_call, file_search_call, mcp_call or mcp_list_tools)"
                ),
            ))
        }
    };
    Ok(item)
}

/// Parse a request's `input`: a string (one user message) or a list of items.
pub fn parse_input(value: &Value) -> Result<Vec<Item>> {
    match value {
        Value::String(s) => Ok(vec![Item::user_text(s, None)]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_item(v, &format!("input[{i}]")))
            .collect(),
        other => Err(CoreError::invalid(
            "input",
            format!(
                "must be a string or a list of items, got {}",
                kind_of(other)
            ),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Tools

#[derive(Debug, Clone, PartialEq)]
pub enum Tool {
    Function {
        name: String,
        description: Option<String>,
        parameters: Option<Value>,
        strict: Option<bool>,
    },
    WebSearch,
    FileSearch {
        vector_store_ids: Vec<String>,
        filters: Option<Value>,
        max_num_results: Option<i64>,
        ranking_options: Option<Value>,
    },
    Mcp {
        server_label: String,
        server_url: String,
        headers: Option<Value>,
        /// `None`: every tool the server lists is allowed.
        allowed_tools: Option<Vec<String>>,
    },
}

pub fn parse_tool(value: &Value, path: &str) -> Result<Tool> {
    let obj = as_object(value, path)?;
    let kind = str_field(obj, "type", path)?;
    Ok(match kind {
        "function" => Tool::Function {
            name: str_field(obj, "name", path)?.to_owned(),
            description: opt_str_field(obj, "description", path)?,
            parameters: obj.get("parameters").filter(|v| !v.is_null()).cloned(),
            strict: obj.get("strict").and_then(Value::as_bool),
        },
        "web_search" | "web_search_preview" | "web_search_preview_2025_03_11" => Tool::WebSearch,
        "file_search" => {
            // 0.2.7 named the field `vector_store_id`; 0.2.12 and OpenAI `vector_store_ids`.
            let ids = obj
                .get("vector_store_ids")
                .or_else(|| obj.get("vector_store_id"));
            let vector_store_ids = match ids {
                Some(Value::Array(ids)) => ids
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_str().map(str::to_owned).ok_or_else(|| {
                            CoreError::invalid(
                                format!("{path}.vector_store_ids[{i}]"),
                                "must be a string",
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
                _ => {
                    return Err(CoreError::invalid(
                        format!("{path}.vector_store_ids"),
                        "is required",
                    ))
                }
            };
            Tool::FileSearch {
                vector_store_ids,
                filters: obj.get("filters").filter(|v| !v.is_null()).cloned(),
                max_num_results: obj.get("max_num_results").and_then(Value::as_i64),
                ranking_options: obj.get("ranking_options").filter(|v| !v.is_null()).cloned(),
            }
        }
        "mcp" => Tool::Mcp {
            server_label: str_field(obj, "server_label", path)?.to_owned(),
            server_url: str_field(obj, "server_url", path)?.to_owned(),
            headers: obj.get("headers").filter(|v| !v.is_null()).cloned(),
            allowed_tools: match obj.get("allowed_tools") {
                None | Some(Value::Null) => None,
                Some(Value::Array(names)) => Some(
                    names
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect(),
                ),
                // AllowedToolsFilter: {"tool_names": [...]}
                Some(Value::Object(filter)) => match filter.get("tool_names") {
                    Some(Value::Array(names)) => Some(
                        names
                            .iter()
                            .filter_map(|n| n.as_str().map(str::to_owned))
                            .collect(),
                    ),
                    _ => None,
                },
                Some(other) => {
                    return Err(CoreError::invalid(
                        format!("{path}.allowed_tools"),
                        format!(
                            "must be a list of tool names or a filter object, got {}",
                            kind_of(other)
                        ),
                    ))
                }
            },
        },
        other => {
            return Err(CoreError::invalid(
                format!("{path}.type"),
                format!(
                "unknown tool type '{other}' (expected function, web_search, file_search or mcp)"
            ),
            ))
        }
    })
}

pub fn parse_tools(value: &Value) -> Result<Vec<Tool>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(tools) => tools
            .iter()
            .enumerate()
            .map(|(i, t)| parse_tool(t, &format!("tools[{i}]")))
            .collect(),
        other => Err(CoreError::invalid(
            "tools",
            format!("must be a list of tools, got {}", kind_of(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_input_is_one_user_message() {
        let items = parse_input(&json!("hi")).unwrap();
        assert_eq!(items, vec![Item::user_text("hi", None)]);
    }

    #[test]
    fn message_without_type_is_accepted() {
        let items = parse_input(&json!([{"role": "developer", "content": "be brief"}])).unwrap();
        assert!(
            matches!(&items[0], Item::Message { role: Role::Developer, content: Content::Text(t), .. } if t == "be brief")
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_input(
            &json!([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]),
        )
        .unwrap_err();
        assert_eq!(err.to_string().split(':').next(), Some("input[1].role"));
        assert!(err.to_string().contains("robot"));

        let err = parse_input(&json!([{"role": "user", "content": [{"type": "input_audio"}]}]))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("input[0].content[0].type"),
            "{err}"
        );
        assert!(err.to_string().contains("input_audio"));

        let err =
            parse_input(&json!([{"type": "function_call_output", "output": "x"}])).unwrap_err();
        assert_eq!(err.to_string(), "input[0].call_id: is required");

        let err = parse_input(&json!([{"content": "x"}])).unwrap_err();
        assert!(err.to_string().starts_with("input[0].type"));

        let err = parse_tools(&json!([{"type": "code_interpreter"}])).unwrap_err();
        assert!(
            err.to_string().starts_with("tools[0].type")
                && err.to_string().contains("code_interpreter")
        );
    }

    #[test]
    fn items_round_trip_through_the_stored_shape() {
        let value = json!([
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"},
                {"type": "input_image", "image_url": "http://x/y.png", "detail": "high"}], "id": "msg_1", "status": null},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "id": "fc_1", "status": "completed"},
            {"type": "function_call_output", "call_id": "c1", "output": "42", "id": null, "status": null},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"}
        ]);
        let items = parse_input(&value).unwrap();
        let back = serde_json::to_value(&items).unwrap();
        assert_eq!(parse_input(&back).unwrap(), items);
        assert_eq!(
            back[0]["content"][1],
            json!({"type": "input_image", "detail": "high", "image_url": "http://x/y.png"})
        );
    }

    #[test]
    fn mcp_allowed_tools_accepts_list_and_filter() {
        let t = parse_tool(&json!({"type": "mcp", "server_label": "s", "server_url": "http://h", "allowed_tools": {"tool_names": ["a"]}}), "tools[0]").unwrap();
        assert!(
            matches!(t, Tool::Mcp { allowed_tools: Some(ref n), .. } if n == &vec!["a".to_string()])
        );
    }
}
