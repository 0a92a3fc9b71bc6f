//! The response object, and the shapes it is written in.
//!
//! * `Shape::Full`: the OpenAI / Open Responses `ResponseResource`, every field present
//!   (`serde_json::to_string(&response)` writes this one);
//! * `Shape::LlamaStack027` / `Shape::LlamaStack0212`: the record llama-stack itself stores (and
//!   streams), byte for byte, so operators can switch between llama-stack and responses-rs over one
//!   store. Output items are written so that llama-stack's `OpenAIResponseOutput` union validates
//!   them (see `LegacyItem`).

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::items::{Content, ContentPart, Item, Role};
use super::request::{text_echo, Reasoning, RequestOptions};

/// Response statuses (OpenAI's `ResponseStatus`).
pub mod status {
    pub const IN_PROGRESS: &str = "in_progress";
    pub const COMPLETED: &str = "completed";
    pub const INCOMPLETE: &str = "incomplete";
    pub const FAILED: &str = "failed";
    pub const QUEUED: &str = "queued";
    pub const CANCELLED: &str = "cancelled";
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseError {
    pub code: String,
    pub message: String,
}

/// Why a response is `incomplete` (OpenAI: `max_output_tokens` or `content_filter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncompleteDetails {
    pub reason: String,
}

/// Which record to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// OpenAI's response object with every field of the Open Responses `ResponseResource`.
    Full,
    /// llama-stack 0.2.7's `OpenAIResponseObject` (no `text`).
    LlamaStack027,
    /// llama-stack 0.2.12's `OpenAIResponseObject` (`text` when the request gave one).
    LlamaStack0212,
}

/// Token usage summed over every inference call of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
}

fn count(value: &Value, path: &[&str]) -> u64 {
    let mut v = value;
    for key in path {
        match v.get(key) {
            Some(next) => v = next,
            None => return 0,
        }
    }
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .unwrap_or(0)
}

impl Usage {
    /// Add a Chat Completions `usage` object (`prompt_tokens`, `completion_tokens`, `total_tokens`,
    /// `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`). Missing
    /// or non-numeric parts count 0; `total_tokens`, when absent, is prompt + completion.
    pub fn add_chat_usage(&mut self, usage: &Value) {
        let prompt = count(usage, &["prompt_tokens"]);
        let completion = count(usage, &["completion_tokens"]);
        let total = match usage.get("total_tokens") {
            Some(t) if t.is_number() => count(usage, &["total_tokens"]),
            _ => prompt + completion,
        };
        self.input_tokens += prompt;
        self.output_tokens += completion;
        self.total_tokens += total;
        self.cached_tokens += count(usage, &["prompt_tokens_details", "cached_tokens"]);
        self.reasoning_tokens += count(usage, &["completion_tokens_details", "reasoning_tokens"]);
    }
}

/// OpenAI's `ResponseUsage` (openai-python 3.57 requires `cache_write_tokens`; nothing here writes
/// a cache, so it is 0).
impl Serialize for Usage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("input_tokens", &self.input_tokens)?;
        map.serialize_entry(
            "input_tokens_details",
            &json!({"cached_tokens": self.cached_tokens, "cache_write_tokens": 0}),
        )?;
        map.serialize_entry("output_tokens", &self.output_tokens)?;
        map.serialize_entry(
            "output_tokens_details",
            &json!({"reasoning_tokens": self.reasoning_tokens}),
        )?;
        map.serialize_entry("total_tokens", &self.total_tokens)?;
        map.end()
    }
}

/// The response object. Optional request options are `None` when the request did not give them:
/// the full shape writes OpenAI's defaults for them, the llama-stack shapes write what llama-stack
/// writes (null).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: String,
    pub object: &'static str,
    pub created_at: i64,
    /// Set when the response completes.
    pub completed_at: Option<i64>,
    /// One of `status::*`.
    pub status: &'static str,
    pub incomplete_details: Option<IncompleteDetails>,
    pub model: String,
    pub previous_response_id: Option<String>,
    pub instructions: Option<String>,
    pub output: Vec<Item>,
    pub error: Option<ResponseError>,
    /// The request's tools as echoed (`Tool::echo`).
    pub tools: Vec<Value>,
    /// `ToolChoice::echo`; `None`: "auto".
    pub tool_choice: Option<Value>,
    /// `None`: "disabled" in full, null in the llama-stack shapes.
    pub truncation: Option<String>,
    /// `None`: true in full; the llama-stack shapes always write false (as llama-stack does).
    pub parallel_tool_calls: Option<bool>,
    /// The request's `text` option as given; full writes `text_echo` of it.
    pub text: Option<Value>,
    pub top_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub top_logprobs: Option<u32>,
    pub temperature: Option<f64>,
    pub reasoning: Option<Reasoning>,
    /// `None` when inference never reported usage.
    pub usage: Option<Usage>,
    pub max_output_tokens: Option<u64>,
    pub max_tool_calls: Option<u64>,
    pub store: bool,
    pub background: bool,
    /// As requested; full writes "default" for none or "auto" (the tier actually used).
    pub service_tier: Option<String>,
    pub metadata: Map<String, Value>,
    pub safety_identifier: Option<String>,
    pub prompt_cache_key: Option<String>,
    pub user: Option<String>,
    /// The request's `prompt` (template reference) as given; the full shape echoes it when given.
    pub prompt: Option<Value>,
    /// The request's `conversation` as `{"id": ...}`; the full shape writes it when given.
    pub conversation: Option<Value>,
    /// Fields a host adds to the full shape (OGX's `skills`), in order, each written once.
    pub host_fields: Vec<(String, Value)>,
}

impl Response {
    /// A response with nothing but its identity: every option at "not given", `in_progress`.
    pub fn minimal(id: String, created_at: i64, model: String) -> Response {
        Response {
            id,
            object: "response",
            created_at,
            completed_at: None,
            status: status::IN_PROGRESS,
            incomplete_details: None,
            model,
            previous_response_id: None,
            instructions: None,
            output: Vec::new(),
            error: None,
            tools: Vec::new(),
            tool_choice: None,
            truncation: None,
            parallel_tool_calls: None,
            text: None,
            top_p: None,
            presence_penalty: None,
            frequency_penalty: None,
            top_logprobs: None,
            temperature: None,
            reasoning: None,
            usage: None,
            max_output_tokens: None,
            max_tool_calls: None,
            store: true,
            background: false,
            service_tier: None,
            metadata: Map::new(),
            safety_identifier: None,
            prompt_cache_key: None,
            user: None,
            prompt: None,
            conversation: None,
            host_fields: Vec::new(),
        }
    }

    /// A new `in_progress` response for a request, echoing its options and `tools_echo`.
    pub fn new(
        id: String,
        created_at: i64,
        opts: &RequestOptions,
        tools_echo: Vec<Value>,
    ) -> Response {
        Response {
            previous_response_id: opts.previous_response_id.clone(),
            instructions: opts.instructions.clone(),
            tools: tools_echo,
            tool_choice: Some(opts.tool_choice.echo()),
            truncation: opts.truncation.map(str::to_owned),
            parallel_tool_calls: opts.parallel_tool_calls,
            text: opts.text.clone(),
            top_p: opts.top_p,
            presence_penalty: opts.presence_penalty,
            frequency_penalty: opts.frequency_penalty,
            top_logprobs: opts.top_logprobs,
            temperature: opts.temperature,
            reasoning: opts.reasoning.clone(),
            max_output_tokens: opts.max_output_tokens,
            max_tool_calls: opts.max_tool_calls,
            store: opts.store,
            background: opts.background,
            service_tier: opts.service_tier.map(str::to_owned),
            metadata: opts.metadata.clone(),
            safety_identifier: opts.safety_identifier.clone(),
            prompt_cache_key: opts.prompt_cache_key.clone(),
            user: opts.user.clone(),
            prompt: opts.prompt.clone(),
            conversation: opts.conversation.as_ref().map(|c| match c {
                Value::String(id) => json!({ "id": id }),
                other => other.clone(),
            }),
            ..Response::minimal(id, created_at, opts.model.clone())
        }
    }

    /// Mark the response completed at `now`.
    pub fn complete(&mut self, now: i64) {
        self.status = status::COMPLETED;
        self.completed_at = Some(now);
    }

    /// Mark the response incomplete (`max_output_tokens`, say).
    pub fn incomplete(&mut self, reason: impl Into<String>) {
        self.status = status::INCOMPLETE;
        self.incomplete_details = Some(IncompleteDetails {
            reason: reason.into(),
        });
    }

    /// Mark the response failed.
    pub fn fail(&mut self, code: impl Into<String>, message: impl Into<String>) {
        self.status = status::FAILED;
        self.error = Some(ResponseError {
            code: code.into(),
            message: message.into(),
        });
    }

    /// Sum a Chat Completions `usage` object into the response's usage.
    pub fn add_chat_usage(&mut self, usage: &Value) {
        self.usage
            .get_or_insert_with(Usage::default)
            .add_chat_usage(usage);
    }

    /// The response in a shape, as a serialisable view.
    pub fn shaped(&self, shape: Shape) -> Shaped<'_> {
        Shaped {
            response: self,
            shape,
        }
    }

    /// The response as JSON text in a shape.
    pub fn to_json(&self, shape: Shape) -> String {
        serde_json::to_string(&self.shaped(shape)).unwrap_or_default()
    }

    /// The response as a JSON value in a shape.
    pub fn to_value(&self, shape: Shape) -> Value {
        serde_json::to_value(self.shaped(shape)).unwrap_or(Value::Null)
    }
}

/// A response viewed in one shape; `Serialize` writes that shape.
#[derive(Debug, Clone, Copy)]
pub struct Shaped<'a> {
    pub response: &'a Response,
    pub shape: Shape,
}

impl Serialize for Shaped<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.shape {
            Shape::Full => serialize_full(self.response, serializer),
            Shape::LlamaStack027 | Shape::LlamaStack0212 => {
                serialize_legacy(self.response, self.shape, serializer)
            }
        }
    }
}

/// `serde_json::to_string(&response)` writes the full shape.
impl Serialize for Response {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_full(self, serializer)
    }
}

fn serialize_full<S: Serializer>(r: &Response, serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("id", &r.id)?;
    map.serialize_entry("object", r.object)?;
    map.serialize_entry("created_at", &r.created_at)?;
    map.serialize_entry("completed_at", &r.completed_at)?;
    map.serialize_entry("status", r.status)?;
    map.serialize_entry("incomplete_details", &r.incomplete_details)?;
    map.serialize_entry("model", &r.model)?;
    map.serialize_entry("previous_response_id", &r.previous_response_id)?;
    map.serialize_entry("instructions", &r.instructions)?;
    map.serialize_entry("output", &FullItems(&r.output))?;
    map.serialize_entry("error", &r.error)?;
    map.serialize_entry("tools", &r.tools)?;
    match &r.tool_choice {
        Some(choice) => map.serialize_entry("tool_choice", choice)?,
        None => map.serialize_entry("tool_choice", "auto")?,
    }
    map.serialize_entry("truncation", r.truncation.as_deref().unwrap_or("disabled"))?;
    map.serialize_entry(
        "parallel_tool_calls",
        &r.parallel_tool_calls.unwrap_or(true),
    )?;
    map.serialize_entry("text", &text_echo(r.text.as_ref()))?;
    map.serialize_entry("top_p", &r.top_p.unwrap_or(1.0))?;
    map.serialize_entry("presence_penalty", &r.presence_penalty.unwrap_or(0.0))?;
    map.serialize_entry("frequency_penalty", &r.frequency_penalty.unwrap_or(0.0))?;
    map.serialize_entry("top_logprobs", &r.top_logprobs.unwrap_or(0))?;
    map.serialize_entry("temperature", &r.temperature.unwrap_or(1.0))?;
    let reasoning = r.reasoning.clone().unwrap_or_default();
    map.serialize_entry("reasoning", &reasoning.echo())?;
    map.serialize_entry("usage", &r.usage)?;
    map.serialize_entry("max_output_tokens", &r.max_output_tokens)?;
    map.serialize_entry("max_tool_calls", &r.max_tool_calls)?;
    map.serialize_entry("store", &r.store)?;
    map.serialize_entry("background", &r.background)?;
    let tier = match r.service_tier.as_deref() {
        None | Some("auto") => "default",
        Some(tier) => tier,
    };
    map.serialize_entry("service_tier", tier)?;
    map.serialize_entry("metadata", &r.metadata)?;
    map.serialize_entry("safety_identifier", &r.safety_identifier)?;
    map.serialize_entry("prompt_cache_key", &r.prompt_cache_key)?;
    map.serialize_entry("user", &r.user)?;
    if let Some(prompt) = &r.prompt {
        map.serialize_entry("prompt", prompt)?;
    }
    if let Some(conversation) = &r.conversation {
        map.serialize_entry("conversation", conversation)?;
    }
    for (name, value) in &r.host_fields {
        map.serialize_entry(name, value)?;
    }
    map.end()
}

/// Exactly the fields llama-stack's `OpenAIResponseObject` writes, in its order: temperature and
/// top_p as given (null otherwise), parallel_tool_calls false, truncation and user null, `text`
/// only for 0.2.12 and only when given, `instructions` only when given (llama-stack's classes have
/// no such field and ignore it on reading).
fn serialize_legacy<S: Serializer>(
    r: &Response,
    shape: Shape,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("created_at", &r.created_at)?;
    map.serialize_entry("error", &r.error)?;
    map.serialize_entry("id", &r.id)?;
    map.serialize_entry("model", &r.model)?;
    map.serialize_entry("object", r.object)?;
    map.serialize_entry("output", &LegacyItems(&r.output))?;
    map.serialize_entry("parallel_tool_calls", &false)?;
    map.serialize_entry("previous_response_id", &r.previous_response_id)?;
    map.serialize_entry("status", r.status)?;
    map.serialize_entry("temperature", &r.temperature)?;
    if let (Shape::LlamaStack0212, Some(text)) = (shape, &r.text) {
        map.serialize_entry("text", text)?;
    }
    map.serialize_entry("top_p", &r.top_p)?;
    map.serialize_entry("truncation", &None::<String>)?;
    map.serialize_entry("user", &None::<String>)?;
    if let Some(instructions) = &r.instructions {
        map.serialize_entry("instructions", instructions)?;
    }
    map.end()
}

// ---------------------------------------------------------------------------------------------
// Items in each shape

/// Items in the llama-stack shapes: what llama-stack's `OpenAIResponseOutput` (and input) unions
/// validate. `reasoning` items are dropped (llama-stack has no such item); in a message, `refusal`
/// parts are dropped, except that a message whose only text is a refusal keeps it as an
/// `output_text` part (so the client still sees why nothing was answered), and `reasoning_text`
/// parts are dropped; `mcp_call.error` is a string and has no `status`; `output_text` parts have no
/// `annotations` unless some were set (today's final items). Everything else is the derived shape.
pub struct LegacyItems<'a>(pub &'a [Item]);

impl Serialize for LegacyItems<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for item in self.0 {
            match item {
                // llama-stack 0.2.x has no such items (and refuses the tools that make them).
                Item::Reasoning { .. }
                | Item::McpApprovalRequest { .. }
                | Item::McpApprovalResponse { .. } => {}
                Item::Message {
                    content: Content::Parts(parts),
                    role,
                    id,
                    status,
                } => seq.serialize_element(&Item::Message {
                    content: Content::Parts(legacy_parts(parts)),
                    role: *role,
                    id: id.clone(),
                    status: status.clone(),
                })?,
                other => seq.serialize_element(other)?,
            }
        }
        seq.end()
    }
}

fn legacy_parts(parts: &[ContentPart]) -> Vec<ContentPart> {
    let kept: Vec<ContentPart> = parts
        .iter()
        .filter_map(|p| match p {
            ContentPart::Refusal { .. } | ContentPart::ReasoningText { .. } => None,
            // llama-stack's records have no `annotations` on output text (none are ever set).
            ContentPart::OutputText { text, annotations } => Some(ContentPart::OutputText {
                text: text.clone(),
                annotations: annotations.clone().filter(|a| !a.is_empty()),
            }),
            other => Some(other.clone()),
        })
        .collect();
    if !kept.is_empty() {
        return kept;
    }
    parts
        .iter()
        .filter_map(|p| match p {
            ContentPart::Refusal { refusal } => Some(ContentPart::OutputText {
                text: refusal.clone(),
                annotations: None,
            }),
            _ => None,
        })
        .collect()
}

/// Items in the OpenAI shape: every `output_text` part has `annotations` (`[]` when none) and
/// `logprobs: []`; an assistant message's string content becomes one `output_text` part; an
/// `mcp_call` has a `status` and its `error` is openai-python's error object.
pub struct FullItems<'a>(pub &'a [Item]);

impl Serialize for FullItems<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(&FullItem(item))?;
        }
        seq.end()
    }
}

pub struct FullItem<'a>(pub &'a Item);

struct FullPart<'a>(&'a ContentPart);

impl Serialize for FullPart<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ContentPart::OutputText { text, annotations } => {
                let mut map = serializer.serialize_map(Some(4))?;
                map.serialize_entry("type", "output_text")?;
                map.serialize_entry("text", text)?;
                map.serialize_entry(
                    "annotations",
                    annotations.as_deref().unwrap_or(&[] as &[Value]),
                )?;
                map.serialize_entry("logprobs", &[] as &[Value])?;
                map.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// openai-python's `McpToolCallError` for an error message: `http_error` when the message starts
/// with an HTTP status (`HTTP 502 ...`), else `mcp_tool_execution_error` carrying the message.
pub fn mcp_error_object(message: &str) -> Value {
    let http_code = message
        .strip_prefix("HTTP ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..600).contains(code));
    match http_code {
        Some(code) => json!({"type": "http_error", "code": code, "message": message}),
        None => json!({"type": "mcp_tool_execution_error", "content": message}),
    }
}

impl Serialize for FullItem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Item::Message {
                content,
                role,
                id,
                status,
            } => {
                let mut map = serializer.serialize_map(Some(5))?;
                map.serialize_entry("type", "message")?;
                map.serialize_entry("id", id)?;
                map.serialize_entry("status", status)?;
                map.serialize_entry("role", role)?;
                match content {
                    Content::Parts(parts) => {
                        let parts: Vec<FullPart> = parts.iter().map(FullPart).collect();
                        map.serialize_entry("content", &parts)?;
                    }
                    Content::Text(text) if *role == Role::Assistant => {
                        let part = ContentPart::OutputText {
                            text: text.clone(),
                            annotations: None,
                        };
                        map.serialize_entry("content", &[FullPart(&part)])?;
                    }
                    Content::Text(text) => map.serialize_entry("content", text)?,
                }
                map.end()
            }
            Item::McpCall {
                id,
                arguments,
                name,
                server_label,
                error,
                output,
                status,
                approval_request_id,
            } => {
                let status = match (status, error, output) {
                    (Some(s), _, _) => s.as_str(),
                    (None, Some(_), _) => "failed",
                    (None, None, Some(_)) => "completed",
                    (None, None, None) => "in_progress",
                };
                let mut map = serializer.serialize_map(Some(8))?;
                map.serialize_entry("type", "mcp_call")?;
                map.serialize_entry("id", id)?;
                map.serialize_entry("arguments", arguments)?;
                map.serialize_entry("name", name)?;
                map.serialize_entry("server_label", server_label)?;
                map.serialize_entry("error", &error.as_deref().map(mcp_error_object))?;
                map.serialize_entry("output", output)?;
                map.serialize_entry("status", status)?;
                if let Some(approval_request_id) = approval_request_id {
                    map.serialize_entry("approval_request_id", approval_request_id)?;
                }
                map.end()
            }
            Item::McpListTools {
                id,
                server_label,
                tools,
                error,
            } => {
                let mut map = serializer.serialize_map(Some(5))?;
                map.serialize_entry("type", "mcp_list_tools")?;
                map.serialize_entry("id", id)?;
                map.serialize_entry("server_label", server_label)?;
                map.serialize_entry("tools", tools)?;
                if let Some(error) = error {
                    map.serialize_entry("error", error)?;
                }
                map.end()
            }
            Item::WebSearchCall { id, status, action } => {
                // openai-python requires `action`; a search without a query still says what it was.
                let mut map = serializer.serialize_map(Some(4))?;
                map.serialize_entry("type", "web_search_call")?;
                map.serialize_entry("id", id)?;
                map.serialize_entry("status", status)?;
                let fallback = json!({"type": "search"});
                map.serialize_entry("action", action.as_ref().unwrap_or(&fallback))?;
                map.end()
            }
            other => other.serialize(serializer),
        }
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
