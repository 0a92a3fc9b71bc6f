//! Compaction, as OGX's builtin does it (`compact_openai_response` in
//! `ogx/providers/inline/responses/builtin/responses/openai_responses.py`), without the I/O: the host
//! reads the previous response, makes the one inference call and stores the record.
//!
//! 1. `Compaction::new(history, instructions, prompt)`: the items to compact (the previous response's
//!    input and output, then the new input; or the input alone) become chat messages, followed by one
//!    user message with the summarization prompt (`instructions`, when given, goes before it).
//! 2. The host calls inference once, not streamed, with `messages_json()`.
//! 3. `finish(completion, summary_prefix)`: the compacted window is every user message of the history,
//!    verbatim under a new `msg_` id, then one `compaction` item (`cmp_` id) whose `encrypted_content`
//!    is the prefix, a newline and the summary, in plain text (OGX does not encrypt it).
//!
//! `Compacted` writes the `response.compaction` object, and the completed response record (no output;
//! its input is the compacted window) that makes the compaction's id usable as a
//! `previous_response_id`. `text_segments` is the text OGX counts tokens of to decide when
//! `context_management` compacts.

use serde::Serialize;
use serde_json::Value;

use super::chat::{self, ChatContent, ChatMessage};
use super::error::{CoreError, Result};
use super::ids::now_unix;
use super::items::{self, Content, ContentPart, Item, Role};
use super::response::{FullItems, Response, Shape, Usage};

/// The summarization prompt `responses-rs serve` uses (`/responses/compact`, `context_management`,
/// the `compaction_trigger` item). OGX's builtin has its own, which that host passes in.
pub const SUMMARY_PROMPT: &str = "Summarize the conversation above for your own later use: the user's goals and \
requests, the decisions made, the facts, names, values and results found (tool calls and their outputs \
included), and what is still open. Be complete but concise; write the summary only.";

/// What precedes the summary in a `compaction` item `responses-rs serve` writes.
pub const SUMMARY_PREFIX: &str = "Summary of the earlier conversation:";

/// A `compaction` item's content: `SUMMARY_PREFIX`, a newline, the summary.
pub fn with_prefix(summary: &str) -> String {
    format!("{SUMMARY_PREFIX}\n{summary}")
}

/// OGX's ids for what compaction makes: the prefix and 24 hex digits of a random UUID.
pub(crate) fn short_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &hex[..24])
}

/// One compaction: the history to summarise and the summarization call's messages.
#[derive(Debug, Clone)]
pub struct Compaction {
    history: Vec<Item>,
    messages: Vec<ChatMessage>,
}

impl Compaction {
    /// `history` is a request `input` (a string or a list of items, already preceded by the previous
    /// response's input and output when there is one); `prompt` is the summarization prompt.
    pub fn new(history: &Value, instructions: Option<&str>, prompt: &str) -> Result<Compaction> {
        let history = match history {
            // OGX makes a string input one user message with that string as its content.
            Value::String(text) => vec![Item::Message {
                content: Content::Text(text.clone()),
                role: Role::User,
                id: None,
                status: None,
            }],
            other => items::parse_input(other)?,
        };
        let mut messages = chat::items_to_messages(&history)?;
        let prompt = match instructions {
            Some(instructions) if !instructions.is_empty() => format!("{instructions}\n\n{prompt}"),
            _ => prompt.to_owned(),
        };
        messages.push(ChatMessage::User {
            content: ChatContent::Text(prompt),
        });
        Ok(Compaction { history, messages })
    }

    /// The summarization call's chat messages, as JSON.
    pub fn messages_json(&self) -> Result<String> {
        serde_json::to_string(&self.messages).map_err(|e| CoreError::protocol(e.to_string()))
    }

    /// The compacted window, from the summarization call's completion (a Chat Completions object:
    /// the summary is the first choice's message text, the usage its `usage`).
    pub fn finish(&self, completion: &Value, summary_prefix: &str) -> Compacted {
        let summary = completion_text(completion);
        let summary = if summary_prefix.is_empty() {
            summary
        } else {
            format!("{summary_prefix}\n{summary}")
        };
        let mut output = window_user_messages(&self.history);
        output.push(Item::Compaction {
            encrypted_content: summary,
            id: Some(short_id("cmp_")),
        });
        let mut usage = Usage::default();
        if let Some(u) = completion.get("usage").filter(|u| u.is_object()) {
            usage.add_chat_usage(u);
        }
        Compacted {
            id: short_id("resp_"),
            created_at: now_unix(),
            output,
            usage,
        }
    }
}

/// The compacted window's user messages: every user message of the history, verbatim under a new
/// `msg_` id (a string content becomes one `input_text` part: a message's content is a list).
pub fn window_user_messages(history: &[Item]) -> Vec<Item> {
    history
        .iter()
        .filter_map(|item| match item {
            Item::Message {
                content,
                role: Role::User,
                ..
            } => Some(Item::Message {
                content: match content {
                    Content::Text(text) => {
                        Content::Parts(vec![ContentPart::InputText { text: text.clone() }])
                    }
                    parts => parts.clone(),
                },
                role: Role::User,
                id: Some(short_id("msg_")),
                status: Some("completed".to_owned()),
            }),
            _ => None,
        })
        .collect()
}

/// The first choice's message text: a string, or the text of a list of parts; empty when none.
fn completion_text(completion: &Value) -> String {
    let content = completion
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("message"))
        .and_then(|m| m.get("content"));
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

#[derive(Serialize)]
struct CompactedView<'a> {
    id: &'a str,
    created_at: i64,
    object: &'static str,
    output: FullItems<'a>,
    usage: &'a Usage,
}

/// The result of a compaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Compacted {
    pub id: String,
    pub created_at: i64,
    /// Every user message of the history, then the `compaction` item.
    pub output: Vec<Item>,
    pub usage: Usage,
}

impl Compacted {
    /// The `response.compaction` object (OpenAI's `CompactedResponse`, OGX's `OpenAICompactedResponse`).
    pub fn to_json(&self) -> Result<String> {
        let view = CompactedView {
            id: &self.id,
            created_at: self.created_at,
            object: "response.compaction",
            output: FullItems(&self.output),
            usage: &self.usage,
        };
        serde_json::to_string(&view).map_err(|e| CoreError::protocol(e.to_string()))
    }

    /// The record stored under the compaction's id: a completed response of `model` with no output
    /// and the compaction's usage (its input is `input_json`).
    pub fn record_json(&self, model: &str) -> String {
        let mut response = Response::minimal(self.id.clone(), self.created_at, model.to_owned());
        response.complete(self.created_at);
        response.usage = Some(self.usage);
        response.to_json(Shape::Full)
    }

    /// The compacted window as stored input items.
    pub fn input_json(&self) -> Result<String> {
        serde_json::to_string(&self.output).map_err(|e| CoreError::protocol(e.to_string()))
    }

    /// The compacted window as chat messages (what OGX stores as the record's `messages`).
    pub fn messages_json(&self) -> Result<String> {
        let messages = chat::items_to_messages(&self.output)?;
        serde_json::to_string(&messages).map_err(|e| CoreError::protocol(e.to_string()))
    }
}

/// The texts OGX's builtin counts tokens of for `context_management` (`_extract_text_segments`):
/// message texts (string content, or parts with a `text`: a refusal part has none), a compaction's
/// summary, a call's non-empty arguments, a function call output.
pub fn text_segments(items: &[Item]) -> Vec<&str> {
    let mut segments = Vec::new();
    for item in items {
        match item {
            Item::Message {
                content: Content::Text(text),
                ..
            } => segments.push(text.as_str()),
            Item::Message {
                content: Content::Parts(parts),
                ..
            } => segments.extend(parts.iter().filter_map(|part| match part {
                ContentPart::InputText { text }
                | ContentPart::OutputText { text, .. }
                | ContentPart::ReasoningText { text } => Some(text.as_str()),
                ContentPart::Refusal { .. } | ContentPart::InputImage { .. } => None,
            })),
            Item::Compaction {
                encrypted_content, ..
            } => segments.push(encrypted_content),
            Item::FunctionCall { arguments, .. }
            | Item::McpCall { arguments, .. }
            | Item::McpApprovalRequest { arguments, .. } => {
                if !arguments.is_empty() {
                    segments.push(arguments)
                }
            }
            Item::FunctionCallOutput { output, .. } | Item::CustomToolCallOutput { output, .. } => {
                segments.push(output)
            }
            Item::CustomToolCall { input, .. } => {
                if !input.is_empty() {
                    segments.push(input)
                }
            }
            Item::ToolSearchCall { .. }
            | Item::ToolSearchOutput { .. }
            | Item::WebSearchCall { .. }
            | Item::FileSearchCall { .. }
            | Item::McpListTools { .. }
            | Item::McpApprovalResponse { .. }
            | Item::Reasoning { .. } => {}
        }
    }
    segments
}

#[cfg(test)]
#[path = "compaction_tests.rs"]
mod tests;
