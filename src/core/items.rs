//! Responses API items (input and output share one shape) and tools, parsed from JSON values with
//! errors that name the offending field, and serialised in the shape llama-stack stores.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{CoreError, Result};
use super::web_search::{self, WebSearchOptions};

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
    /// The model declined to answer (an assistant message part).
    #[serde(rename = "refusal")]
    Refusal { refusal: String },
    /// The model's reasoning text (a part of a `reasoning` item's `content`).
    #[serde(rename = "reasoning_text")]
    ReasoningText { text: String },
}

impl ContentPart {
    /// The part's text: a refusal's explanation counts as text, an image has none.
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

/// One item of a response's input or output. Field order matches what llama-stack writes, and the
/// derived `Serialize` is the shape llama-stack writes for the variants it knows (an `mcp_call`'s
/// `status` is left out: llama-stack's class has none). `response::Shape` selects the OpenAI shape.
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
        /// The `namespace` tool the function belongs to (OpenAI's field); absent for a plain function.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// A call of a `custom` (free-form input) tool, handed back to the client.
    #[serde(rename = "custom_tool_call")]
    CustomToolCall {
        call_id: String,
        input: String,
        name: String,
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// The client's result of a `custom_tool_call` (a list of content parts is kept as its text).
    #[serde(rename = "custom_tool_call_output")]
    CustomToolCallOutput {
        call_id: String,
        output: String,
        id: Option<String>,
    },
    /// A `tool_search` the model asked for, executed by the client (`execution: "client"`).
    #[serde(rename = "tool_search_call")]
    ToolSearchCall {
        id: Option<String>,
        call_id: Option<String>,
        arguments: Value,
        execution: String,
        status: Option<String>,
    },
    /// The client's answer to a `tool_search_call`: the tools it found.
    #[serde(rename = "tool_search_output")]
    ToolSearchOutput {
        id: Option<String>,
        call_id: Option<String>,
        tools: Vec<Value>,
        execution: String,
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
    WebSearchCall {
        id: String,
        status: String,
        /// What the search did (`{"type": "search", "query": ...}`): written in OpenAI's shape only,
        /// llama-stack's records have no such field.
        #[serde(default, skip_serializing)]
        action: Option<Value>,
    },
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
        /// in_progress | completed | incomplete | calling | failed. `None`: derived from
        /// `error`/`output` where a status is written (see `response::Shape::Full`).
        #[serde(default, skip_serializing)]
        status: Option<String>,
        /// The `mcp_approval_request` this call ran on (OpenAI's field): written in OpenAI's shape only.
        #[serde(default, skip_serializing)]
        approval_request_id: Option<String>,
    },
    #[serde(rename = "mcp_list_tools")]
    McpListTools {
        id: String,
        server_label: String,
        tools: Vec<Value>,
        /// Why the server's tools could not be listed (OpenAI's `McpListTools.error`): written in
        /// OpenAI's shape only, and only when set (llama-stack 0.2.x's item has no such field).
        #[serde(default, skip_serializing)]
        error: Option<String>,
    },
    /// A call to an MCP tool that needs the user's approval: it was not run (OpenAI's
    /// `McpApprovalRequest`). llama-stack 0.2.x has no such item.
    #[serde(rename = "mcp_approval_request")]
    McpApprovalRequest {
        id: String,
        arguments: String,
        name: String,
        server_label: String,
    },
    /// The user's answer to an `mcp_approval_request` (an input item only).
    #[serde(rename = "mcp_approval_response")]
    McpApprovalResponse {
        approval_request_id: String,
        approve: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The model's reasoning. `summary` holds `{"type": "summary_text", "text"}` parts as given;
    /// `content` holds `reasoning_text` parts. llama-stack 0.2.x has no such item.
    #[serde(rename = "reasoning")]
    Reasoning {
        id: String,
        summary: Vec<Value>,
        #[serde(default)]
        content: Vec<ContentPart>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
    },
    /// A summary of earlier context made by compaction (`/responses/compact` or `context_management`),
    /// replayed as input. OGX keeps `encrypted_content` as plain text; the model gets it as an
    /// assistant message. llama-stack 0.2.x has no such item.
    #[serde(rename = "compaction")]
    Compaction {
        encrypted_content: String,
        id: Option<String>,
    },
}

impl Item {
    pub fn id(&self) -> Option<&str> {
        match self {
            Item::Message { id, .. }
            | Item::FunctionCall { id, .. }
            | Item::FunctionCallOutput { id, .. }
            | Item::Compaction { id, .. }
            | Item::CustomToolCall { id, .. }
            | Item::CustomToolCallOutput { id, .. }
            | Item::ToolSearchCall { id, .. }
            | Item::ToolSearchOutput { id, .. } => id.as_deref(),
            Item::WebSearchCall { id, .. }
            | Item::FileSearchCall { id, .. }
            | Item::McpCall { id, .. }
            | Item::McpListTools { id, .. }
            | Item::McpApprovalRequest { id, .. }
            | Item::Reasoning { id, .. } => Some(id),
            Item::McpApprovalResponse { id, .. } => id.as_deref(),
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

pub(crate) fn str_field<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => Err(CoreError::invalid(format!("{path}.{key}"), "is required")),
        Some(other) => Err(CoreError::invalid(
            format!("{path}.{key}"),
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

pub(crate) fn opt_str_field(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Null) | None => Ok(None),
        Some(other) => Err(CoreError::invalid(
            format!("{path}.{key}"),
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| {
        CoreError::invalid(path, format!("must be an object, got {}", kind_of(value)))
    })
}

pub(crate) fn parse_content_part(value: &Value, path: &str) -> Result<ContentPart> {
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
        "refusal" => Ok(ContentPart::Refusal {
            refusal: str_field(obj, "refusal", path)?.to_owned(),
        }),
        "reasoning_text" => Ok(ContentPart::ReasoningText {
            text: str_field(obj, "text", path)?.to_owned(),
        }),
        other => Err(CoreError::invalid(
            format!("{path}.type"),
            format!(
                "unknown content part type '{other}' (expected input_text, output_text, input_image, \
                 refusal or reasoning_text)"
            ),
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
            namespace: opt_str_field(obj, "namespace", path)?,
        },
        "custom_tool_call" => Item::CustomToolCall {
            call_id: str_field(obj, "call_id", path)?.to_owned(),
            input: opt_str_field(obj, "input", path)?.unwrap_or_default(),
            name: str_field(obj, "name", path)?.to_owned(),
            id: opt_str_field(obj, "id", path)?,
            namespace: opt_str_field(obj, "namespace", path)?,
        },
        "custom_tool_call_output" => Item::CustomToolCallOutput {
            call_id: str_field(obj, "call_id", path)?.to_owned(),
            output: output_text(obj.get("output"), path)?,
            id: opt_str_field(obj, "id", path)?,
        },
        "tool_search_call" => Item::ToolSearchCall {
            id: opt_str_field(obj, "id", path)?,
            call_id: opt_str_field(obj, "call_id", path)?,
            arguments: obj.get("arguments").cloned().unwrap_or(Value::Null),
            execution: opt_str_field(obj, "execution", path)?.unwrap_or_else(|| "client".to_owned()),
            status: opt_str_field(obj, "status", path)?,
        },
        "tool_search_output" => Item::ToolSearchOutput {
            id: opt_str_field(obj, "id", path)?,
            call_id: opt_str_field(obj, "call_id", path)?,
            tools: match obj.get("tools") {
                Some(Value::Array(tools)) => tools.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(other) => {
                    return Err(CoreError::invalid(
                        format!("{path}.tools"),
                        format!("must be a list, got {}", kind_of(other)),
                    ))
                }
            },
            execution: opt_str_field(obj, "execution", path)?.unwrap_or_else(|| "client".to_owned()),
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
            action: obj.get("action").filter(|a| a.is_object()).cloned(),
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
            error: parse_mcp_error(obj.get("error"), path)?,
            output: opt_str_field(obj, "output", path)?,
            status: opt_str_field(obj, "status", path)?,
            approval_request_id: opt_str_field(obj, "approval_request_id", path)?,
        },
        "mcp_approval_request" => Item::McpApprovalRequest {
            id: str_field(obj, "id", path)?.to_owned(),
            arguments: opt_str_field(obj, "arguments", path)?.unwrap_or_default(),
            name: str_field(obj, "name", path)?.to_owned(),
            server_label: str_field(obj, "server_label", path)?.to_owned(),
        },
        "mcp_approval_response" => Item::McpApprovalResponse {
            approval_request_id: str_field(obj, "approval_request_id", path)?.to_owned(),
            approve: match obj.get("approve") {
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(CoreError::invalid(
                        format!("{path}.approve"),
                        format!("must be a boolean, got {}", kind_of(other)),
                    ))
                }
                None => return Err(CoreError::invalid(format!("{path}.approve"), "is required")),
            },
            id: opt_str_field(obj, "id", path)?,
            reason: opt_str_field(obj, "reason", path)?,
        },
        "mcp_list_tools" => Item::McpListTools {
            id: str_field(obj, "id", path)?.to_owned(),
            server_label: str_field(obj, "server_label", path)?.to_owned(),
            tools: match obj.get("tools") {
                Some(Value::Array(ts)) => ts.clone(),
                _ => Vec::new(),
            },
            error: opt_str_field(obj, "error", path)?,
        },
        "reasoning" => parse_reasoning(obj, path)?,
        "compaction" => Item::Compaction {
            encrypted_content: str_field(obj, "encrypted_content", path)?.to_owned(),
            id: opt_str_field(obj, "id", path)?,
        },
        other => {
            return Err(CoreError::invalid(
                format!("{path}.type"),
                format!(
                    "unknown input item type '{other}' (expected message, function_call, function_call_output, \
                     custom_tool_call, custom_tool_call_output, tool_search_call, tool_search_output, web_search_call, \
                     file_search_call, mcp_call, mcp_list_tools, mcp_approval_request, mcp_approval_response, \
                     reasoning or compaction)"
                ),
            ))
        }
    };
    Ok(item)
}

/// A `custom_tool_call_output`'s `output`: a string, or a list of content parts kept as their text.
fn output_text(value: Option<&Value>, path: &str) -> Result<String> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                let part = parse_content_part(part, &format!("{path}.output[{i}]"))?;
                text.push_str(part.text().unwrap_or_default());
            }
            Ok(text)
        }
        Some(Value::Null) | None => {
            Err(CoreError::invalid(format!("{path}.output"), "is required"))
        }
        Some(other) => Err(CoreError::invalid(
            format!("{path}.output"),
            format!(
                "must be a string or a list of content parts, got {}",
                kind_of(other)
            ),
        )),
    }
}

/// An `mcp_call`'s `error`: llama-stack writes a string, OpenAI an object such as
/// `{"type": "mcp_tool_execution_error", "content": ...}` or `{"type": "http_error", "code", "message"}`.
/// Either is kept as the message text.
fn parse_mcp_error(value: Option<&Value>, path: &str) -> Result<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Object(obj)) => {
            let text = match (obj.get("message"), obj.get("content")) {
                (Some(Value::String(m)), _) => m.clone(),
                (_, Some(Value::String(c))) => c.clone(),
                (_, Some(content)) if !content.is_null() => content.to_string(),
                _ => Value::Object(obj.clone()).to_string(),
            };
            Ok(Some(text))
        }
        Some(other) => Err(CoreError::invalid(
            format!("{path}.error"),
            format!(
                "must be a string or an error object, got {}",
                kind_of(other)
            ),
        )),
    }
}

/// A `reasoning` item replayed by a client: `id` and `summary` are required.
fn parse_reasoning(obj: &Map<String, Value>, path: &str) -> Result<Item> {
    let summary = match obj.get("summary") {
        Some(Value::Array(parts)) => {
            for (i, part) in parts.iter().enumerate() {
                let part_path = format!("{path}.summary[{i}]");
                let part_obj = as_object(part, &part_path)?;
                str_field(part_obj, "text", &part_path)?;
            }
            parts.clone()
        }
        Some(Value::Null) | None => {
            return Err(CoreError::invalid(format!("{path}.summary"), "is required"))
        }
        Some(other) => {
            return Err(CoreError::invalid(
                format!("{path}.summary"),
                format!("must be a list, got {}", kind_of(other)),
            ))
        }
    };
    let content = match obj.get("content") {
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| parse_content_part(p, &format!("{path}.content[{i}]")))
            .collect::<Result<Vec<_>>>()?,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => {
            return Err(CoreError::invalid(
                format!("{path}.content"),
                format!("must be a list, got {}", kind_of(other)),
            ))
        }
    };
    Ok(Item::Reasoning {
        id: str_field(obj, "id", path)?.to_owned(),
        summary,
        content,
        encrypted_content: opt_str_field(obj, "encrypted_content", path)?,
        status: opt_str_field(obj, "status", path)?,
    })
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
    /// `web_search` (any spelling): its options.
    WebSearch(WebSearchOptions),
    /// A free-form tool: the model writes its input as plain text (`format`: `text` or a `grammar`).
    Custom {
        name: String,
        description: Option<String>,
        format: Option<Value>,
    },
    /// A group of function and custom tools under one name (the calls carry it as `namespace`).
    Namespace {
        name: String,
        description: Option<String>,
        tools: Vec<Tool>,
    },
    /// A `tool_search` the client executes (`execution: "client"`).
    ToolSearch {
        description: Option<String>,
        parameters: Option<Value>,
    },
    FileSearch {
        vector_store_ids: Vec<String>,
        filters: Option<Value>,
        max_num_results: Option<i64>,
        ranking_options: Option<Value>,
    },
    Mcp {
        server_label: String,
        server_url: String,
        /// OpenAI's and OGX's connector (a host resolves it to `server_url` before the core sees it).
        connector_id: Option<String>,
        headers: Option<Value>,
        /// `None`: every tool the server lists is allowed.
        allowed_tools: Option<Vec<String>>,
        require_approval: Approval,
    },
}

/// An MCP tool's `require_approval`: which of its tools may run only once the user approved the call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Approval {
    /// Nothing needs approval: the default of OGX and llama-stack (OpenAI's default is "always").
    #[default]
    Never,
    Always,
    /// Names that always / never need approval; a name in neither list needs it (OpenAI, OGX).
    Filter {
        always: Vec<String>,
        never: Vec<String>,
    },
}

impl Approval {
    /// Does a call to the tool `name` need the user's approval?
    pub fn needed(&self, name: &str) -> bool {
        match self {
            Approval::Never => false,
            Approval::Always => true,
            Approval::Filter { always, never } => {
                always.iter().any(|n| n == name) || !never.iter().any(|n| n == name)
            }
        }
    }

    /// The OpenAI shape (`{"always": {"tool_names": [...]}, "never": {...}}` for a filter).
    fn echo(&self) -> Value {
        let names = |names: &[String]| {
            let list: Vec<Value> = names.iter().map(|n| Value::from(n.as_str())).collect();
            let mut obj = Map::new();
            obj.insert("tool_names".to_owned(), Value::Array(list));
            Value::Object(obj)
        };
        match self {
            Approval::Never => Value::from("never"),
            Approval::Always => Value::from("always"),
            Approval::Filter { always, never } => {
                let mut obj = Map::new();
                if !always.is_empty() {
                    obj.insert("always".to_owned(), names(always));
                }
                if !never.is_empty() {
                    obj.insert("never".to_owned(), names(never));
                }
                Value::Object(obj)
            }
        }
    }

    /// "always", "never", or a filter: each of `always` / `never` a list of names (OGX's
    /// `ApprovalFilter`) or `{"tool_names": [...]}` (OpenAI's).
    fn parse(value: Option<&Value>, path: &str) -> Result<Approval> {
        let names = |value: Option<&Value>, field: &str| -> Result<Vec<String>> {
            let list = match value {
                None | Some(Value::Null) => return Ok(Vec::new()),
                Some(Value::Object(filter)) => match filter.get("tool_names") {
                    None | Some(Value::Null) => return Ok(Vec::new()),
                    Some(list) => list,
                },
                Some(list) => list,
            };
            match list {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        n.as_str().map(str::to_owned).ok_or_else(|| {
                            CoreError::invalid(format!("{path}.{field}[{i}]"), "must be a string")
                        })
                    })
                    .collect(),
                other => Err(CoreError::invalid(
                    format!("{path}.{field}"),
                    format!("must be a list of tool names, got {}", kind_of(other)),
                )),
            }
        };
        match value {
            None | Some(Value::Null) => Ok(Approval::Never),
            Some(Value::String(s)) if s == "never" => Ok(Approval::Never),
            Some(Value::String(s)) if s == "always" => Ok(Approval::Always),
            Some(Value::Object(filter)) => Ok(Approval::Filter {
                always: names(filter.get("always"), "always")?,
                never: names(filter.get("never"), "never")?,
            }),
            Some(other) => Err(CoreError::invalid(
                path,
                format!(
                    "must be 'always', 'never' or an approval filter, got {}",
                    match other {
                        Value::String(s) => format!("'{s}'"),
                        other => kind_of(other).to_owned(),
                    }
                ),
            )),
        }
    }
}

impl Tool {
    /// The tool as the response's `tools` echoes it (OpenAI shape). An MCP server's `headers` are
    /// left out: they often carry credentials, and OpenAI does not echo them either.
    pub fn echo(&self) -> Value {
        let mut obj = Map::new();
        let mut put = |k: &str, v: Value| {
            obj.insert(k.to_owned(), v);
        };
        match self {
            Tool::Function {
                name,
                description,
                parameters,
                strict,
            } => {
                put("type", Value::from("function"));
                put("name", Value::from(name.as_str()));
                put(
                    "description",
                    description.as_deref().map_or(Value::Null, Value::from),
                );
                put("parameters", parameters.clone().unwrap_or(Value::Null));
                put("strict", strict.map_or(Value::Null, Value::Bool));
            }
            Tool::WebSearch(options) => {
                put("type", Value::from("web_search"));
                for (key, value) in options.echo_fields() {
                    put(key, value);
                }
            }
            Tool::Custom {
                name,
                description,
                format,
            } => {
                put("type", Value::from("custom"));
                put("name", Value::from(name.as_str()));
                if let Some(d) = description {
                    put("description", Value::from(d.as_str()));
                }
                if let Some(f) = format {
                    put("format", f.clone());
                }
            }
            Tool::Namespace {
                name,
                description,
                tools,
            } => {
                put("type", Value::from("namespace"));
                put("name", Value::from(name.as_str()));
                put(
                    "description",
                    Value::from(description.as_deref().unwrap_or_default()),
                );
                put(
                    "tools",
                    Value::Array(tools.iter().map(Tool::echo).collect()),
                );
            }
            Tool::ToolSearch {
                description,
                parameters,
            } => {
                put("type", Value::from("tool_search"));
                put("execution", Value::from("client"));
                if let Some(d) = description {
                    put("description", Value::from(d.as_str()));
                }
                if let Some(p) = parameters {
                    put("parameters", p.clone());
                }
            }
            Tool::FileSearch {
                vector_store_ids,
                filters,
                max_num_results,
                ranking_options,
            } => {
                put("type", Value::from("file_search"));
                put(
                    "vector_store_ids",
                    Value::Array(
                        vector_store_ids
                            .iter()
                            .map(|v| Value::from(v.as_str()))
                            .collect(),
                    ),
                );
                if let Some(f) = filters {
                    put("filters", f.clone());
                }
                if let Some(n) = max_num_results {
                    put("max_num_results", Value::from(*n));
                }
                if let Some(r) = ranking_options {
                    put("ranking_options", r.clone());
                }
            }
            Tool::Mcp {
                server_label,
                server_url,
                connector_id,
                allowed_tools,
                require_approval,
                ..
            } => {
                put("type", Value::from("mcp"));
                put("server_label", Value::from(server_label.as_str()));
                put("server_url", Value::from(server_url.as_str()));
                if let Some(connector_id) = connector_id {
                    put("connector_id", Value::from(connector_id.as_str()));
                }
                put(
                    "allowed_tools",
                    allowed_tools.as_ref().map_or(Value::Null, |names| {
                        Value::Array(names.iter().map(|n| Value::from(n.as_str())).collect())
                    }),
                );
                put("require_approval", require_approval.echo());
            }
        }
        Value::Object(obj)
    }
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
        "web_search"
        | "web_search_2025_08_26"
        | "web_search_preview"
        | "web_search_preview_2025_03_11" => Tool::WebSearch(web_search::parse_options(obj, path)?),
        "custom" => Tool::Custom {
            name: str_field(obj, "name", path)?.to_owned(),
            description: opt_str_field(obj, "description", path)?,
            format: match obj.get("format") {
                None | Some(Value::Null) => None,
                Some(Value::Object(f)) => Some(Value::Object(f.clone())),
                Some(other) => {
                    return Err(CoreError::invalid(
                        format!("{path}.format"),
                        format!("must be an object, got {}", kind_of(other)),
                    ))
                }
            },
        },
        "namespace" => {
            let name = str_field(obj, "name", path)?.to_owned();
            let tools = match obj.get("tools") {
                Some(Value::Array(tools)) => tools
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let inner_path = format!("{path}.tools[{i}]");
                        match parse_tool(t, &inner_path)? {
                            inner @ (Tool::Function { .. } | Tool::Custom { .. }) => Ok(inner),
                            _ => Err(CoreError::invalid(
                                format!("{inner_path}.type"),
                                "a namespace holds only function and custom tools",
                            )),
                        }
                    })
                    .collect::<Result<Vec<_>>>()?,
                Some(Value::Null) | None => {
                    return Err(CoreError::invalid(format!("{path}.tools"), "is required"))
                }
                Some(other) => {
                    return Err(CoreError::invalid(
                        format!("{path}.tools"),
                        format!("must be a list of tools, got {}", kind_of(other)),
                    ))
                }
            };
            Tool::Namespace {
                name,
                description: opt_str_field(obj, "description", path)?,
                tools,
            }
        }
        "tool_search" => {
            let execution = opt_str_field(obj, "execution", path)?;
            if execution.as_deref().is_some_and(|e| e != "client") {
                return Err(CoreError::invalid(
                    format!("{path}.execution"),
                    "only 'client' execution is served (the client runs the search)",
                ));
            }
            Tool::ToolSearch {
                description: opt_str_field(obj, "description", path)?,
                parameters: obj.get("parameters").filter(|v| v.is_object()).cloned(),
            }
        }
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
            connector_id: opt_str_field(obj, "connector_id", path)?,
            server_url: match opt_str_field(obj, "server_url", path)? {
                Some(url) => url,
                None if obj.get("connector_id").is_some_and(|c| !c.is_null()) => {
                    return Err(CoreError::invalid(
                        format!("{path}.connector_id"),
                        "this host cannot resolve an MCP connector: give server_url",
                    ))
                }
                None => {
                    return Err(CoreError::invalid(
                        format!("{path}.server_url"),
                        "is required",
                    ))
                }
            },
            require_approval: Approval::parse(
                obj.get("require_approval"),
                &format!("{path}.require_approval"),
            )?,
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
                "unknown tool type '{other}' (expected function, custom, namespace, tool_search, web_search, \
                 file_search or mcp)"
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

    #[test]
    fn reasoning_items_and_refusals_parse() {
        let items = parse_input(&json!([
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thought"}],
             "content": [{"type": "reasoning_text", "text": "step 1"}], "encrypted_content": "xyz",
             "status": "completed"},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "refusal", "refusal": "no"}, {"type": "output_text", "text": "sorry"}]},
        ]))
        .unwrap();
        assert_eq!(
            items[0],
            Item::Reasoning {
                id: "rs_1".into(),
                summary: vec![json!({"type": "summary_text", "text": "thought"})],
                content: vec![ContentPart::ReasoningText {
                    text: "step 1".into()
                }],
                encrypted_content: Some("xyz".into()),
                status: Some("completed".into()),
            }
        );
        assert_eq!(items[0].id(), Some("rs_1"));
        match &items[1] {
            Item::Message {
                content: Content::Parts(parts),
                ..
            } => {
                assert_eq!(
                    parts[0],
                    ContentPart::Refusal {
                        refusal: "no".into()
                    }
                );
                assert_eq!(parts[0].text(), Some("no"));
            }
            other => panic!("{other:?}"),
        }
        // The derived (stored) shape round-trips.
        let back = serde_json::to_value(&items).unwrap();
        assert_eq!(parse_input(&back).unwrap(), items);
        // A minimal reasoning item: content and the optional fields may be absent.
        let items =
            parse_input(&json!([{"type": "reasoning", "id": "rs_2", "summary": []}])).unwrap();
        assert_eq!(
            serde_json::to_value(&items[0]).unwrap(),
            json!({"type": "reasoning", "id": "rs_2", "summary": [], "content": []})
        );
    }

    #[test]
    fn reasoning_errors_name_the_field() {
        let err = parse_input(&json!([{"type": "reasoning", "summary": []}])).unwrap_err();
        assert_eq!(err.to_string(), "input[0].id: is required");
        let err = parse_input(&json!([{"type": "reasoning", "id": "r"}])).unwrap_err();
        assert_eq!(err.to_string(), "input[0].summary: is required");
        let err = parse_input(
            &json!([{"type": "reasoning", "id": "r", "summary": [{"type": "summary_text"}]}]),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "input[0].summary[0].text: is required");
        let err = parse_input(
            &json!([{"type": "reasoning", "id": "r", "summary": [], "content": [{"type": "reasoning_text"}]}]),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "input[0].content[0].text: is required");
        let err = parse_input(
            &json!([{"role": "assistant", "content": [{"type": "refusal", "refusal": 3}]}]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "input[0].content[0].refusal: must be a string, got a number"
        );
    }

    #[test]
    fn mcp_call_status_and_error_object_parse() {
        let items = parse_input(&json!([
            {"type": "mcp_call", "id": "mcp_1", "name": "f", "server_label": "s", "arguments": "{}",
             "error": {"type": "mcp_tool_execution_error", "content": "boom"}, "status": "failed"},
            {"type": "mcp_call", "id": "mcp_2", "name": "f", "server_label": "s",
             "error": {"type": "http_error", "code": 502, "message": "bad gateway"}},
            {"type": "mcp_call", "id": "mcp_3", "name": "f", "server_label": "s", "error": "plain"},
        ]))
        .unwrap();
        let errors: Vec<_> = items
            .iter()
            .map(|i| match i {
                Item::McpCall { error, status, .. } => (error.clone(), status.clone()),
                _ => (None, None),
            })
            .collect();
        assert_eq!(
            errors,
            vec![
                (Some("boom".into()), Some("failed".into())),
                (Some("bad gateway".into()), None),
                (Some("plain".into()), None),
            ]
        );
        // llama-stack's mcp_call has no status: the stored shape leaves it out.
        assert!(serde_json::to_value(&items[0])
            .unwrap()
            .get("status")
            .is_none());
        let err = parse_input(
            &json!([{"type": "mcp_call", "id": "m", "name": "f", "server_label": "s", "error": 1}]),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("input[0].error: "), "{err}");
    }

    #[test]
    fn tools_echo_in_openai_shape() {
        let tools = parse_tools(&json!([
            {"type": "function", "name": "f", "parameters": {"type": "object"}},
            {"type": "web_search_preview"},
            {"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 5},
            {"type": "mcp", "server_label": "s", "server_url": "http://h", "headers": {"Authorization": "secret"}},
        ]))
        .unwrap();
        let echoed: Vec<Value> = tools.iter().map(Tool::echo).collect();
        assert_eq!(
            echoed,
            vec![
                json!({"type": "function", "name": "f", "description": null, "parameters": {"type": "object"}, "strict": null}),
                json!({"type": "web_search", "filters": null, "search_context_size": "medium", "user_location": null}),
                json!({"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 5}),
                json!({"type": "mcp", "server_label": "s", "server_url": "http://h", "allowed_tools": null, "require_approval": "never"}),
            ]
        );
    }
}
