//! The orchestration state machine for one `create_openai_response` call.
//!
//! It is sans-IO: `next_action` says what I/O is needed (look up a tool, call inference, invoke a
//! tool, store the record), the driver performs it and feeds the result back (`provide_tool_def`,
//! `text_delta`/`tool_call_delta`/`end_inference`, `tool_result`, `stored`). Stream events queue up
//! in `events` as they happen; the driver drains them. One `Turn` owns one `sequence_number`
//! counter, so numbering stays contiguous across every inference round.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};

use super::chat::{self, ChatContent, ChatMessage, ToolCall, ToolCallFunction};
use super::error::{CoreError, Result};
use super::events::{
    ArgumentsOf, Event, EventBody, Marker, Response, ResponseError, ResponseEventKind,
};
use super::ids::{new_id, now_unix};
use super::items::{self, Content, ContentPart, Item, Role, Tool};
use super::request::response_format;
use super::response::Shape;

/// What the caller asked for, plus the few switches where the llama-stack versions differ.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    pub model: String,
    pub temperature: Option<f64>,
    /// Generate stream events (a streamed request). Off, nothing is built that nobody reads.
    pub emit_events: bool,
    pub store: bool,
    pub instructions: Option<String>,
    /// The request's `text` option, echoed on the response and turned into `response_format`.
    pub text: Option<Value>,
    pub previous_response_id: Option<String>,
    /// Inference calls allowed in one turn (llama-stack's `max_infer_iters`).
    pub max_rounds: u32,
    /// Ask inference for a chunk stream (0.2.12 always does; 0.2.7 only for streamed requests).
    pub stream_inference: bool,
    /// Pass `response_format` to inference (0.2.12 does, 0.2.7 has no such argument).
    pub send_response_format: bool,
    /// Accept `file_search` and `mcp` tools. The 0.2.7 contract has no vector store API to search
    /// and no MCP client, so there they are refused up front rather than failing halfway.
    pub extended_tools: bool,
}

/// I/O the driver must perform next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `tool_groups_api.get_tool(name)`, answered with `provide_tool_def`.
    GetToolDef { name: String },
    /// `list_mcp_tools(endpoint, headers)`, answered with `provide_mcp_tools`.
    ListMcpTools {
        server_label: String,
        server_url: String,
        headers: Option<Value>,
    },
    /// `inference_api.openai_chat_completion(...)`, answered with deltas and `end_inference`.
    Infer {
        messages: String,
        tools: Option<String>,
        stream: bool,
        response_format: Option<Value>,
    },
    /// `tool_runtime_api.invoke_tool(tool_name=, kwargs=)`, answered with `tool_result`.
    InvokeTool { name: String, arguments: Value },
    /// `invoke_mcp_tool(endpoint, headers, tool_name, kwargs)`, answered with `tool_result`.
    InvokeMcp {
        server_url: String,
        headers: Option<Value>,
        name: String,
        arguments: Value,
    },
    /// `vector_io_api.openai_search_vector_store(...)` on every store; the list of pages is
    /// answered with `tool_result`.
    FileSearch {
        query: String,
        vector_store_ids: Vec<String>,
        filters: Option<Value>,
        max_num_results: Option<i64>,
        ranking_options: Option<Value>,
    },
    /// Write the finished response and its input; answered with `stored`.
    Store { response: String, input: String },
    /// Nothing more: read `response_json`.
    Done,
}

/// A delta event the caller builds itself (see `text_delta_direct`): everything but the text, which
/// is the piece the caller just passed in.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectDelta {
    /// `None` for output text, else whose arguments these are.
    pub of: Option<ArgumentsOf>,
    pub sequence_number: u64,
    pub item_id: Arc<str>,
    pub output_index: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallKind {
    Function,
    WebSearch,
    FileSearch(usize),
    Mcp(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    ToolDef { tool: usize, name: &'static str },
    Mcp { tool: usize, server: usize },
}

#[derive(Debug)]
struct McpServer {
    label: String,
    url: String,
    headers: Option<Value>,
    allowed: Option<Vec<String>>,
}

#[derive(Debug)]
struct OpenMessage {
    output_index: usize,
    item_id: Arc<str>,
    text: String,
}

#[derive(Debug)]
struct PendingCall {
    index: u32,
    call_id: String,
    name: String,
    arguments: String,
    kind: Option<CallKind>,
    /// Output slot once an item exists for it (function and MCP calls get one while streaming).
    output_index: Option<usize>,
    item_id: Arc<str>,
}

#[derive(Debug, Default)]
struct Round {
    message: Option<OpenMessage>,
    calls: Vec<PendingCall>,
    /// Position in `calls` of the last call touched: 1-character argument deltas hit it every time.
    last_call: usize,
}

#[derive(Debug)]
struct Execution {
    kind: CallKind,
    call_id: String,
    name: String,
    arguments: String,
    output_index: Option<usize>,
    item_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Lookups,
    AwaitLookup,
    Infer,
    Inferring,
    Execute,
    AwaitTool,
    Finish,
    AwaitStore,
    Complete,
    Done,
}

pub struct Turn {
    cfg: TurnConfig,
    response_id: String,
    created_at: i64,
    /// The input as it will be stored (llama-stack stores the whole re-hydrated input).
    stored_input: Vec<Item>,
    messages: Vec<ChatMessage>,
    tools: Vec<Tool>,
    /// Chat tool definitions, one slot per request tool, filled as lookups complete.
    chat_tools: Vec<Vec<Value>>,
    chat_tools_json: Option<String>,
    function_names: HashSet<String>,
    server_tools: HashMap<String, CallKind>,
    mcp_servers: Vec<McpServer>,
    lookups: Vec<Lookup>,
    next_lookup: usize,
    /// The open `mcp_list_tools` item while its listing is under way.
    listing: Option<(usize, String)>,
    output: Vec<Item>,
    round: Round,
    rounds_done: u32,
    /// Server-side calls of the last round waiting to run, and the one running.
    queue: VecDeque<Execution>,
    running: Option<Execution>,
    /// A round returned function calls to the client: the turn ends after its server calls.
    stop_after_round: bool,
    phase: Phase,
    seq: u64,
    events: VecDeque<Event>,
    final_response: Option<Response>,
    /// The assistant text of the round just closed, for the history sent to the next round.
    round_text: Option<String>,
}

/// The text of a tool invocation result: `content` may be a string, a content item or a list of them.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(content_text)
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(obj) => match obj.get("text") {
            Some(Value::String(t)) => t.clone(),
            _ => serde_json::to_string(content).unwrap_or_default(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Parse tool-call arguments: empty means none; anything else must be a JSON object.
fn parse_arguments(arguments: &str) -> std::result::Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("the tool arguments must be a JSON object".to_owned()),
        Err(e) => Err(format!("the tool arguments are not valid JSON ({e})")),
    }
}

impl Turn {
    /// Build a turn from the request's `input` (string or item list, already merged with any previous
    /// response) and `tools`. Every malformed part is reported here, before any I/O.
    pub fn new(cfg: TurnConfig, input: &Value, tools: &Value) -> Result<Turn> {
        let mut stored_input = items::parse_input(input)?;
        if input.is_string() {
            // llama-stack gives a synthesised string message an id when it stores it.
            if let Some(Item::Message { id, .. }) = stored_input.first_mut() {
                *id = Some(new_id("msg_"));
            }
        }
        let tools = items::parse_tools(tools)?;
        if !cfg.extended_tools {
            for (i, tool) in tools.iter().enumerate() {
                let kind = match tool {
                    Tool::FileSearch { .. } => "file_search",
                    Tool::Mcp { .. } => "mcp",
                    _ => continue,
                };
                return Err(CoreError::invalid(
                    format!("tools[{i}].type"),
                    format!("tool type '{kind}' is not supported by the llama-stack 0.2.7 contract (it needs 0.2.12)"),
                ));
            }
        }
        let mut messages = Vec::with_capacity(stored_input.len() + 1);
        if let Some(instructions) = &cfg.instructions {
            messages.push(ChatMessage::System {
                content: ChatContent::Text(instructions.clone()),
            });
        }
        match input {
            // A string input reaches the model as plain string content, as llama-stack sends it.
            Value::String(text) => messages.push(ChatMessage::User {
                content: ChatContent::Text(text.clone()),
            }),
            _ => messages.extend(chat::items_to_messages(&stored_input)?),
        }
        if cfg.send_response_format {
            response_format(cfg.text.as_ref())?;
        }

        let mut turn = Turn {
            response_id: new_id("resp-"),
            created_at: now_unix(),
            stored_input,
            messages,
            chat_tools: vec![Vec::new(); tools.len()],
            chat_tools_json: None,
            function_names: HashSet::new(),
            server_tools: HashMap::new(),
            mcp_servers: Vec::new(),
            lookups: Vec::new(),
            next_lookup: 0,
            listing: None,
            output: Vec::new(),
            round: Round::default(),
            rounds_done: 0,
            queue: VecDeque::new(),
            running: None,
            stop_after_round: false,
            phase: Phase::Start,
            seq: 0,
            events: VecDeque::new(),
            final_response: None,
            round_text: None,
            tools: Vec::new(),
            cfg,
        };
        let mut web_search_seen = false;
        for (i, tool) in tools.iter().enumerate() {
            match tool {
                Tool::Function {
                    name,
                    description,
                    parameters,
                    strict,
                } => {
                    turn.chat_tools[i].push(chat::function_tool(
                        name,
                        description.as_deref(),
                        parameters.as_ref(),
                        *strict,
                    ));
                    turn.function_names.insert(name.clone());
                }
                Tool::WebSearch => {
                    if !web_search_seen {
                        web_search_seen = true;
                        turn.lookups.push(Lookup::ToolDef {
                            tool: i,
                            name: "web_search",
                        });
                    }
                }
                Tool::FileSearch { .. } => turn.lookups.push(Lookup::ToolDef {
                    tool: i,
                    name: "knowledge_search",
                }),
                Tool::Mcp {
                    server_label,
                    server_url,
                    headers,
                    allowed_tools,
                } => {
                    turn.lookups.push(Lookup::Mcp {
                        tool: i,
                        server: turn.mcp_servers.len(),
                    });
                    turn.mcp_servers.push(McpServer {
                        label: server_label.clone(),
                        url: server_url.clone(),
                        headers: headers.clone(),
                        allowed: allowed_tools.clone(),
                    });
                }
            }
        }
        turn.tools = tools;
        Ok(turn)
    }

    pub fn response_id(&self) -> &str {
        &self.response_id
    }

    /// Events generated since the last drain, oldest first.
    pub fn drain_events(&mut self) -> std::collections::vec_deque::Drain<'_, Event> {
        self.events.drain(..)
    }

    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    pub fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The finished response (completed or failed), once there is one.
    pub fn final_response(&self) -> Option<&Response> {
        self.final_response.as_ref()
    }

    fn emit(&mut self, body: EventBody) {
        self.events.push_back(Event {
            sequence_number: self.seq,
            body,
        });
        self.seq += 1;
    }

    fn snapshot(&self, status: &'static str, error: Option<ResponseError>) -> Response {
        Response {
            error,
            output: self.output.clone(),
            previous_response_id: self.cfg.previous_response_id.clone(),
            status,
            temperature: self.cfg.temperature,
            text: self.cfg.text.clone(),
            instructions: self.cfg.instructions.clone(),
            store: self.cfg.store,
            ..Response::minimal(
                self.response_id.clone(),
                self.created_at,
                self.cfg.model.clone(),
            )
        }
    }

    fn emit_response_event(&mut self, kind: ResponseEventKind, status: &'static str) {
        if self.cfg.emit_events {
            let response = self.snapshot(status, None);
            self.emit(EventBody::Response {
                kind,
                response: Box::new(response),
            });
        }
    }

    /// Append an item to the output and announce it.
    fn open_item(&mut self, item: Item) -> usize {
        let output_index = self.output.len();
        if self.cfg.emit_events {
            self.emit(EventBody::OutputItem {
                done: false,
                output_index,
                item: item.clone(),
                response_id: self.response_id.clone(),
            });
        }
        self.output.push(item);
        output_index
    }

    /// Replace an output item with its final form and announce that it is done.
    fn close_item(&mut self, output_index: usize, item: Item) {
        if self.cfg.emit_events {
            self.emit(EventBody::OutputItem {
                done: true,
                output_index,
                item: item.clone(),
                response_id: self.response_id.clone(),
            });
        }
        if let Some(slot) = self.output.get_mut(output_index) {
            *slot = item;
        }
    }

    fn marker(&mut self, marker: Marker, item_id: &str, output_index: usize) {
        if self.cfg.emit_events {
            self.emit(EventBody::Marker {
                marker,
                item_id: item_id.to_owned(),
                output_index,
            });
        }
    }

    fn expect(&self, phase: Phase, what: &str) -> Result<()> {
        if self.phase == phase {
            Ok(())
        } else {
            Err(CoreError::protocol(format!(
                "{what} while the turn is in phase {:?}",
                self.phase
            )))
        }
    }

    // -----------------------------------------------------------------------------------------
    // The driver's loop

    pub fn next_action(&mut self) -> Result<Action> {
        loop {
            match self.phase {
                Phase::Start => {
                    self.emit_response_event(ResponseEventKind::Created, "in_progress");
                    self.emit_response_event(ResponseEventKind::InProgress, "in_progress");
                    self.phase = Phase::Lookups;
                }
                Phase::Lookups => match self.lookups.get(self.next_lookup).cloned() {
                    Some(Lookup::ToolDef { name, .. }) => {
                        self.phase = Phase::AwaitLookup;
                        return Ok(Action::GetToolDef {
                            name: name.to_owned(),
                        });
                    }
                    Some(Lookup::Mcp { server, .. }) => {
                        let item_id = new_id("mcpl_");
                        let label = self.mcp_servers[server].label.clone();
                        let output_index = self.open_item(Item::McpListTools {
                            id: item_id.clone(),
                            server_label: label.clone(),
                            tools: Vec::new(),
                        });
                        self.marker(Marker::McpListToolsInProgress, &item_id, output_index);
                        self.listing = Some((output_index, item_id));
                        self.phase = Phase::AwaitLookup;
                        let server = &self.mcp_servers[server];
                        return Ok(Action::ListMcpTools {
                            server_label: label,
                            server_url: server.url.clone(),
                            headers: server.headers.clone(),
                        });
                    }
                    None => {
                        let all: Vec<&Value> = self.chat_tools.iter().flatten().collect();
                        self.chat_tools_json = if all.is_empty() {
                            None
                        } else {
                            Some(
                                serde_json::to_string(&all)
                                    .map_err(|e| CoreError::protocol(e.to_string()))?,
                            )
                        };
                        self.phase = Phase::Infer;
                    }
                },
                Phase::Infer => {
                    self.rounds_done += 1;
                    self.round = Round::default();
                    self.phase = Phase::Inferring;
                    let messages = serde_json::to_string(&self.messages)
                        .map_err(|e| CoreError::protocol(e.to_string()))?;
                    return Ok(Action::Infer {
                        messages,
                        tools: self.chat_tools_json.clone(),
                        stream: self.cfg.stream_inference,
                        response_format: if self.cfg.send_response_format {
                            Some(response_format(self.cfg.text.as_ref())?)
                        } else {
                            None
                        },
                    });
                }
                Phase::Execute => match self.queue.pop_front() {
                    Some(exec) => {
                        if let Some(action) = self.start_execution(exec) {
                            self.phase = Phase::AwaitTool;
                            return Ok(action);
                        }
                    }
                    None => {
                        self.phase =
                            if !self.stop_after_round && self.rounds_done < self.cfg.max_rounds {
                                Phase::Infer
                            } else {
                                Phase::Finish
                            };
                    }
                },
                Phase::Finish => {
                    let response = self.snapshot("completed", None);
                    self.final_response = Some(response);
                    if self.cfg.store {
                        self.phase = Phase::AwaitStore;
                        let response = self
                            .final_response
                            .as_ref()
                            .map(|r| r.to_json(Shape::LlamaStack0212))
                            .unwrap_or_default();
                        let input = serde_json::to_string(&self.stored_input)
                            .map_err(|e| CoreError::protocol(e.to_string()))?;
                        return Ok(Action::Store { response, input });
                    }
                    self.phase = Phase::Complete;
                }
                Phase::Complete => {
                    if self.cfg.emit_events {
                        if let Some(response) = self.final_response.clone() {
                            self.emit(EventBody::Response {
                                kind: ResponseEventKind::Completed,
                                response: Box::new(response),
                            });
                        }
                    }
                    self.phase = Phase::Done;
                }
                Phase::Done => return Ok(Action::Done),
                Phase::AwaitLookup | Phase::Inferring | Phase::AwaitTool | Phase::AwaitStore => {
                    return Err(CoreError::protocol(format!(
                        "next_action called before the result of the pending action (phase {:?})",
                        self.phase
                    )))
                }
            }
        }
    }

    /// The answer to `GetToolDef`: llama-stack's `ToolDef` as JSON.
    pub fn provide_tool_def(&mut self, tooldef: &Value) -> Result<()> {
        self.expect(Phase::AwaitLookup, "provide_tool_def")?;
        let Some(Lookup::ToolDef { tool, name }) = self.lookups.get(self.next_lookup).cloned()
        else {
            return Err(CoreError::protocol(
                "provide_tool_def answers no tool lookup",
            ));
        };
        let chat_tool = chat::tooldef_to_chat_tool(name, tooldef)?;
        self.chat_tools[tool].push(chat_tool);
        let kind = match self.tools.get(tool) {
            Some(Tool::FileSearch { .. }) => CallKind::FileSearch(tool),
            _ => CallKind::WebSearch,
        };
        self.server_tools.insert(name.to_owned(), kind);
        self.next_lookup += 1;
        self.phase = Phase::Lookups;
        Ok(())
    }

    /// The answer to `ListMcpTools`: the listed tools, each `{name, description, input_schema}` or a
    /// llama-stack `ToolDef` (`parameters` list); a `{"data": [...]}` wrapper is accepted.
    pub fn provide_mcp_tools(&mut self, listing: &Value) -> Result<()> {
        self.expect(Phase::AwaitLookup, "provide_mcp_tools")?;
        let Some(Lookup::Mcp { tool, server }) = self.lookups.get(self.next_lookup).cloned() else {
            return Err(CoreError::protocol(
                "provide_mcp_tools answers no MCP lookup",
            ));
        };
        let listed = listing.get("data").unwrap_or(listing);
        let listed = listed.as_array().ok_or_else(|| {
            CoreError::invalid("list_mcp_tools result", "must be a list of tools")
        })?;
        let mut tools_json = Vec::new();
        for (i, def) in listed.iter().enumerate() {
            let name = def
                .get("name")
                .or_else(|| def.get("tool_name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    CoreError::invalid(format!("list_mcp_tools result[{i}].name"), "is required")
                })?;
            if let Some(allowed) = &self.mcp_servers[server].allowed {
                if !allowed.iter().any(|a| a == name) {
                    continue;
                }
            }
            let description = def.get("description").and_then(Value::as_str);
            let chat_tool = match def.get("input_schema").filter(|s| s.is_object()) {
                Some(schema) => chat::mcp_tool_to_chat_tool(name, description, schema),
                None => chat::tooldef_to_chat_tool(name, def)?,
            };
            let input_schema = chat_tool["function"]["parameters"].clone();
            tools_json.push(
                json!({"input_schema": input_schema, "name": name, "description": description}),
            );
            self.chat_tools[tool].push(chat_tool);
            // Several servers may list the same name; the first one listed keeps it.
            self.server_tools
                .entry(name.to_owned())
                .or_insert(CallKind::Mcp(server));
        }
        if let Some((output_index, item_id)) = self.listing.take() {
            self.marker(Marker::McpListToolsCompleted, &item_id, output_index);
            let item = Item::McpListTools {
                id: item_id,
                server_label: self.mcp_servers[server].label.clone(),
                tools: tools_json,
            };
            self.close_item(output_index, item);
        }
        self.next_lookup += 1;
        self.phase = Phase::Lookups;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Inference results: the hot path. Called once per chunk.

    /// A piece of the assistant's text. Empty pieces are ignored.
    pub fn text_delta(&mut self, text: &str) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        if self.phase != Phase::Inferring {
            return self.expect(Phase::Inferring, "text_delta");
        }
        if self.round.message.is_none() {
            self.open_message();
        }
        let emit = self.cfg.emit_events;
        let Some(msg) = self.round.message.as_mut() else {
            return Err(CoreError::protocol("message not open"));
        };
        msg.text.push_str(text);
        if emit {
            let body = EventBody::TextDelta {
                item_id: msg.item_id.clone(),
                output_index: msg.output_index,
                content_index: 0,
                delta: text.to_owned(),
            };
            self.emit(body);
        }
        Ok(())
    }

    /// The per-chunk fast path of `text_delta`: when the message is already open, nothing but the
    /// delta event follows, and instead of queueing it (allocating its text) the turn hands back what
    /// the caller needs to build it from the text it already holds. `None`: use `drain`/`pop_event`.
    pub fn text_delta_direct(&mut self, text: &str) -> Result<Option<DirectDelta>> {
        if self.phase == Phase::Inferring
            && self.cfg.emit_events
            && !text.is_empty()
            && self.events.is_empty()
        {
            if let Some(msg) = self.round.message.as_mut() {
                msg.text.push_str(text);
                let delta = DirectDelta {
                    of: None,
                    sequence_number: self.seq,
                    item_id: msg.item_id.clone(),
                    output_index: msg.output_index,
                };
                self.seq += 1;
                return Ok(Some(delta));
            }
        }
        self.text_delta(text).map(|()| None)
    }

    fn open_message(&mut self) {
        let item_id = new_id("msg_");
        let output_index = self.open_item(Item::Message {
            content: Content::Parts(Vec::new()),
            role: Role::Assistant,
            id: Some(item_id.clone()),
            status: Some("in_progress".to_owned()),
        });
        if self.cfg.emit_events {
            self.emit(EventBody::ContentPart {
                done: false,
                item_id: item_id.clone(),
                output_index,
                content_index: 0,
                part: ContentPart::OutputText {
                    text: String::new(),
                    annotations: Some(Vec::new()),
                },
            });
        }
        self.round.message = Some(OpenMessage {
            output_index,
            item_id: item_id.into(),
            text: String::new(),
        });
    }

    /// A piece of a tool call, aggregated by `index`. Every part is optional: servers send the id and
    /// name once, then argument pieces (which may be `None` or empty).
    pub fn tool_call_delta(
        &mut self,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Option<&str>,
    ) -> Result<()> {
        self.tool_call_delta_inner(index, id, name, arguments, false)
            .map(|_| ())
    }

    /// The per-chunk fast path of `tool_call_delta`, as `text_delta_direct` is for text: when the
    /// piece only extends the arguments of a call whose item is open, the delta is handed back.
    pub fn tool_call_delta_direct(
        &mut self,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Option<&str>,
    ) -> Result<Option<DirectDelta>> {
        let direct = self.events.is_empty();
        self.tool_call_delta_inner(index, id, name, arguments, direct)
    }

    fn tool_call_delta_inner(
        &mut self,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Option<&str>,
        direct: bool,
    ) -> Result<Option<DirectDelta>> {
        if self.phase != Phase::Inferring {
            return self
                .expect(Phase::Inferring, "tool_call_delta")
                .map(|()| None);
        }
        let pos = match self.round.calls.get(self.round.last_call) {
            Some(call) if call.index == index => self.round.last_call,
            _ => match self.round.calls.iter().position(|c| c.index == index) {
                Some(pos) => pos,
                None => {
                    self.round.calls.push(PendingCall {
                        index,
                        call_id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                        kind: None,
                        output_index: None,
                        item_id: Arc::from(""),
                    });
                    self.round.calls.len() - 1
                }
            },
        };
        self.round.last_call = pos;
        let call = &mut self.round.calls[pos];
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            if call.call_id.is_empty() {
                call.call_id = id.to_owned();
            }
        }
        if let Some(name) = name.filter(|s| !s.is_empty()) {
            if call.name.is_empty() {
                call.name = name.to_owned();
            }
        }
        let delta = arguments.unwrap_or("");
        call.arguments.push_str(delta);
        if call.kind.is_none() && !call.name.is_empty() {
            self.classify_call(pos);
        } else if !delta.is_empty() && self.cfg.emit_events {
            if let (Some(output_index), Some(of)) = (call.output_index, arguments_of(call.kind)) {
                if direct {
                    let delta = DirectDelta {
                        of: Some(of),
                        sequence_number: self.seq,
                        item_id: call.item_id.clone(),
                        output_index,
                    };
                    self.seq += 1;
                    return Ok(Some(delta));
                }
                let body = EventBody::ArgumentsDelta {
                    of,
                    item_id: call.item_id.clone(),
                    output_index,
                    delta: delta.to_owned(),
                };
                self.emit(body);
            }
        }
        Ok(None)
    }

    /// Decide what a call is once its name is known; function and MCP calls get their item now so
    /// their arguments can stream, server-side searches get theirs when they run.
    fn classify_call(&mut self, pos: usize) {
        let name = self.round.calls[pos].name.clone();
        let kind = if self.function_names.contains(&name) {
            CallKind::Function
        } else {
            // A name the request did not offer is handed back to the client as a function call.
            self.server_tools
                .get(&name)
                .copied()
                .unwrap_or(CallKind::Function)
        };
        self.round.calls[pos].kind = Some(kind);
        let (item_id, item) = match kind {
            CallKind::Function => {
                let id = new_id("fc_");
                let call = &self.round.calls[pos];
                let item = Item::FunctionCall {
                    arguments: String::new(),
                    call_id: call.call_id.clone(),
                    name: name.clone(),
                    id: Some(id.clone()),
                    status: Some("in_progress".to_owned()),
                };
                (id, item)
            }
            CallKind::Mcp(server) => {
                let id = new_id("mcp_");
                let item = Item::McpCall {
                    id: id.clone(),
                    arguments: String::new(),
                    name: name.clone(),
                    server_label: self.mcp_servers[server].label.clone(),
                    error: None,
                    output: None,
                    status: None,
                };
                (id, item)
            }
            CallKind::WebSearch | CallKind::FileSearch(_) => return,
        };
        let output_index = self.open_item(item);
        let call = &mut self.round.calls[pos];
        call.output_index = Some(output_index);
        call.item_id = item_id.into();
        // Arguments that arrived before the name go out as one delta.
        if !call.arguments.is_empty() && self.cfg.emit_events {
            if let Some(of) = arguments_of(call.kind) {
                let body = EventBody::ArgumentsDelta {
                    of,
                    item_id: call.item_id.clone(),
                    output_index,
                    delta: call.arguments.clone(),
                };
                self.emit(body);
            }
        }
    }

    /// The inference stream (or the one completion) is over: close what it opened and decide what
    /// comes next.
    pub fn end_inference(&mut self) -> Result<()> {
        self.expect(Phase::Inferring, "end_inference")?;
        self.close_message("completed");
        // A call whose name never came has nothing to run: it goes back to the client as it is.
        for pos in 0..self.round.calls.len() {
            if self.round.calls[pos].kind.is_none() {
                self.classify_call(pos);
            }
        }
        let mut calls = std::mem::take(&mut self.round.calls);
        calls.sort_by_key(|c| c.index);
        let mut tool_calls = Vec::with_capacity(calls.len());
        let mut server_calls = Vec::new();
        for (i, mut call) in calls.into_iter().enumerate() {
            if call.call_id.is_empty() {
                call.call_id = new_id("call_");
            }
            tool_calls.push(ToolCall {
                index: i as u32,
                id: call.call_id.clone(),
                kind: "function",
                function: ToolCallFunction {
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                },
            });
            match call.kind {
                Some(CallKind::Function) | None => {
                    self.stop_after_round = true;
                    if let Some(output_index) = call.output_index {
                        if self.cfg.emit_events {
                            self.emit(EventBody::ArgumentsDone {
                                of: ArgumentsOf::Function,
                                item_id: call.item_id.to_string(),
                                output_index,
                                arguments: call.arguments.clone(),
                            });
                        }
                        let item = Item::FunctionCall {
                            arguments: call.arguments,
                            call_id: call.call_id,
                            name: call.name,
                            id: Some(call.item_id.to_string()),
                            status: Some("completed".to_owned()),
                        };
                        self.close_item(output_index, item);
                    }
                }
                Some(kind) => {
                    if let (CallKind::Mcp(_), Some(output_index)) = (kind, call.output_index) {
                        if self.cfg.emit_events {
                            self.emit(EventBody::ArgumentsDone {
                                of: ArgumentsOf::Mcp,
                                item_id: call.item_id.to_string(),
                                output_index,
                                arguments: call.arguments.clone(),
                            });
                        }
                    }
                    server_calls.push(Execution {
                        kind,
                        call_id: call.call_id,
                        name: call.name,
                        arguments: call.arguments,
                        output_index: call.output_index,
                        item_id: call.item_id.to_string(),
                    });
                }
            }
        }
        let text = self.round_text.take();
        if !tool_calls.is_empty() || text.is_some() {
            self.messages.push(ChatMessage::Assistant {
                content: text.map(ChatContent::Text),
                tool_calls: if tool_calls.is_empty() {
                    None
                } else {
                    Some(tool_calls)
                },
                reasoning_content: None,
            });
        }
        let has_server_calls = !server_calls.is_empty();
        self.queue.extend(server_calls);
        self.phase = if has_server_calls {
            Phase::Execute
        } else {
            Phase::Finish
        };
        Ok(())
    }

    fn close_message(&mut self, status: &str) {
        let Some(msg) = self.round.message.take() else {
            return;
        };
        if self.cfg.emit_events {
            self.emit(EventBody::TextDone {
                item_id: msg.item_id.to_string(),
                output_index: msg.output_index,
                content_index: 0,
                text: msg.text.clone(),
            });
            self.emit(EventBody::ContentPart {
                done: true,
                item_id: msg.item_id.to_string(),
                output_index: msg.output_index,
                content_index: 0,
                part: ContentPart::OutputText {
                    text: msg.text.clone(),
                    annotations: Some(Vec::new()),
                },
            });
        }
        let item = Item::Message {
            content: Content::Parts(vec![ContentPart::OutputText {
                text: msg.text.clone(),
                annotations: None,
            }]),
            role: Role::Assistant,
            id: Some(msg.item_id.to_string()),
            status: Some(status.to_owned()),
        };
        self.close_item(msg.output_index, item);
        self.round_text = Some(msg.text);
    }

    // -----------------------------------------------------------------------------------------
    // Server-side tools

    /// Announce a server-side call and ask for its I/O; `None` when it failed before any I/O
    /// (malformed arguments), in which case the model is told and the queue moves on.
    fn start_execution(&mut self, mut exec: Execution) -> Option<Action> {
        let parsed = parse_arguments(&exec.arguments);
        let action = match exec.kind {
            CallKind::WebSearch => {
                let item_id = new_id("ws_");
                let output_index = self.open_item(Item::WebSearchCall {
                    id: item_id.clone(),
                    status: "in_progress".to_owned(),
                });
                self.marker(Marker::WebSearchInProgress, &item_id, output_index);
                exec.output_index = Some(output_index);
                exec.item_id = item_id;
                match &parsed {
                    Ok(args) => {
                        self.marker(Marker::WebSearchSearching, &exec.item_id, output_index);
                        Some(Action::InvokeTool {
                            name: exec.name.clone(),
                            arguments: args.clone(),
                        })
                    }
                    Err(_) => None,
                }
            }
            CallKind::FileSearch(tool) => {
                let query = parsed
                    .as_ref()
                    .ok()
                    .and_then(|a| a.get("query"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let item_id = new_id("fs_");
                let output_index = self.open_item(Item::FileSearchCall {
                    id: item_id.clone(),
                    queries: query.iter().cloned().collect(),
                    status: "in_progress".to_owned(),
                    results: None,
                });
                self.marker(Marker::FileSearchInProgress, &item_id, output_index);
                exec.output_index = Some(output_index);
                exec.item_id = item_id;
                match (query, self.tools.get(tool).cloned()) {
                    (
                        Some(query),
                        Some(Tool::FileSearch {
                            vector_store_ids,
                            filters,
                            max_num_results,
                            ranking_options,
                        }),
                    ) => {
                        self.marker(Marker::FileSearchSearching, &exec.item_id, output_index);
                        Some(Action::FileSearch {
                            query,
                            vector_store_ids,
                            filters,
                            max_num_results,
                            ranking_options,
                        })
                    }
                    _ => None,
                }
            }
            CallKind::Mcp(server) => {
                if let Some(output_index) = exec.output_index {
                    self.marker(
                        Marker::McpCallInProgress,
                        &exec.item_id.clone(),
                        output_index,
                    );
                }
                match &parsed {
                    Ok(args) => {
                        let server = &self.mcp_servers[server];
                        Some(Action::InvokeMcp {
                            server_url: server.url.clone(),
                            headers: server.headers.clone(),
                            name: exec.name.clone(),
                            arguments: args.clone(),
                        })
                    }
                    Err(_) => None,
                }
            }
            CallKind::Function => None,
        };
        match action {
            Some(action) => {
                self.running = Some(exec);
                Some(action)
            }
            None => {
                let message = match parsed {
                    Err(e) => e,
                    Ok(_) => "the tool call has no 'query' argument".to_owned(),
                };
                self.finish_execution(exec, Err(message), None);
                None
            }
        }
    }

    /// The answer to `InvokeTool`, `InvokeMcp` (llama-stack's `ToolInvocationResult` as JSON) or
    /// `FileSearch` (the list of search pages, one per vector store).
    pub fn tool_result(&mut self, result: &Value) -> Result<()> {
        self.expect(Phase::AwaitTool, "tool_result")?;
        let exec = self
            .running
            .take()
            .ok_or_else(|| CoreError::protocol("tool_result without a running call"))?;
        if let CallKind::FileSearch(_) = exec.kind {
            let query = match exec.output_index.and_then(|i| self.output.get(i)) {
                Some(Item::FileSearchCall { queries, .. }) => {
                    queries.first().cloned().unwrap_or_default()
                }
                _ => String::new(),
            };
            let (results, text) = file_search_results(result, &query);
            self.finish_execution(exec, Ok(text), Some(results));
        } else {
            // llama-stack's rule: a positive error_code or an error_message means the call failed.
            let message = result
                .get("error_message")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty());
            let code = result
                .get("error_code")
                .and_then(Value::as_i64)
                .filter(|c| *c > 0);
            let outcome = match (code, message) {
                (None, None) => Ok(content_text(result.get("content").unwrap_or(&Value::Null))),
                (None, Some(message)) => Err(message.to_owned()),
                (Some(code), message) => {
                    let detail = match message {
                        Some(m) => m.to_owned(),
                        // An MCP tool that reports isError puts its explanation in the content.
                        None => content_text(result.get("content").unwrap_or(&Value::Null)),
                    };
                    Err(format!("Error (code {code}): {detail}"))
                }
            };
            self.finish_execution(exec, outcome, None);
        }
        self.phase = Phase::Execute;
        Ok(())
    }

    /// Close a server-side call's item and tell the model what came of it.
    fn finish_execution(
        &mut self,
        exec: Execution,
        outcome: std::result::Result<String, String>,
        results: Option<Vec<Value>>,
    ) {
        let ok = outcome.is_ok();
        let tool_message = match &outcome {
            Ok(text) => text.clone(),
            Err(message) if message.starts_with("Error") => message.clone(),
            Err(message) => format!("Error: {message}"),
        };
        if let Some(output_index) = exec.output_index {
            let item_id = exec.item_id.clone();
            let status = if ok { "completed" } else { "failed" };
            let item = match exec.kind {
                CallKind::WebSearch => {
                    if ok {
                        self.marker(Marker::WebSearchCompleted, &item_id, output_index);
                    }
                    Item::WebSearchCall {
                        id: item_id,
                        status: status.to_owned(),
                    }
                }
                CallKind::FileSearch(_) => {
                    if ok {
                        self.marker(Marker::FileSearchCompleted, &item_id, output_index);
                    }
                    let queries = match self.output.get(output_index) {
                        Some(Item::FileSearchCall { queries, .. }) => queries.clone(),
                        _ => Vec::new(),
                    };
                    Item::FileSearchCall {
                        id: item_id,
                        queries,
                        status: status.to_owned(),
                        results,
                    }
                }
                CallKind::Mcp(server) => {
                    let marker = if ok {
                        Marker::McpCallCompleted
                    } else {
                        Marker::McpCallFailed
                    };
                    self.marker(marker, &item_id, output_index);
                    let (output, error) = match outcome {
                        Ok(text) => (Some(text), None),
                        Err(message) => (None, Some(message)),
                    };
                    Item::McpCall {
                        id: item_id,
                        arguments: exec.arguments.clone(),
                        name: exec.name.clone(),
                        server_label: self.mcp_servers[server].label.clone(),
                        error,
                        output,
                        status: None,
                    }
                }
                CallKind::Function => return,
            };
            self.close_item(output_index, item);
        }
        self.messages.push(ChatMessage::Tool {
            content: tool_message,
            tool_call_id: exec.call_id,
        });
    }

    /// The answer to `Store`.
    pub fn stored(&mut self) -> Result<()> {
        self.expect(Phase::AwaitStore, "stored")?;
        self.phase = Phase::Complete;
        Ok(())
    }

    /// End the turn as failed: close every open item and emit `response.failed`. The driver calls
    /// this when a collaborator raised mid-stream; nothing is stored afterwards.
    pub fn fail(&mut self, message: &str) {
        if self.phase == Phase::Done {
            return;
        }
        if self.phase == Phase::Inferring {
            self.close_message("incomplete");
            for call in std::mem::take(&mut self.round.calls) {
                if let (Some(output_index), Some(kind)) = (call.output_index, call.kind) {
                    let item = match kind {
                        CallKind::Mcp(server) => Item::McpCall {
                            id: call.item_id.to_string(),
                            arguments: call.arguments,
                            name: call.name,
                            server_label: self.mcp_servers[server].label.clone(),
                            error: Some(message.to_owned()),
                            output: None,
                            status: None,
                        },
                        _ => Item::FunctionCall {
                            arguments: call.arguments,
                            call_id: call.call_id,
                            name: call.name,
                            id: Some(call.item_id.to_string()),
                            status: Some("incomplete".to_owned()),
                        },
                    };
                    self.close_item(output_index, item);
                }
            }
        }
        if let Some((output_index, item_id)) = self.listing.take() {
            self.marker(Marker::McpListToolsFailed, &item_id, output_index);
            let label = match self.output.get(output_index) {
                Some(Item::McpListTools { server_label, .. }) => server_label.clone(),
                _ => String::new(),
            };
            self.close_item(
                output_index,
                Item::McpListTools {
                    id: item_id,
                    server_label: label,
                    tools: Vec::new(),
                },
            );
        }
        if let Some(exec) = self.running.take() {
            self.finish_execution(exec, Err(message.to_owned()), None);
        }
        // Queued calls that never started have no item to close.
        self.queue.clear();
        let response = self.snapshot(
            "failed",
            Some(ResponseError {
                code: "server_error".to_owned(),
                message: message.to_owned(),
            }),
        );
        if self.cfg.emit_events {
            self.emit(EventBody::Response {
                kind: ResponseEventKind::Failed,
                response: Box::new(response.clone()),
            });
        }
        self.final_response = Some(response);
        self.phase = Phase::Done;
    }
}

fn arguments_of(kind: Option<CallKind>) -> Option<ArgumentsOf> {
    match kind {
        Some(CallKind::Function) => Some(ArgumentsOf::Function),
        Some(CallKind::Mcp(_)) => Some(ArgumentsOf::Mcp),
        _ => None,
    }
}

/// Turn vector-store search pages into the `file_search_call` results and the text the model reads
/// (the same text llama-stack 0.2.12 gives the model, so prompts tuned for it keep working).
fn file_search_results(pages: &Value, query: &str) -> (Vec<Value>, String) {
    let mut results = Vec::new();
    let pages: Vec<&Value> = match pages {
        Value::Array(pages) => pages.iter().collect(),
        other => vec![other],
    };
    for page in pages {
        let data = page.get("data").and_then(Value::as_array);
        for hit in data.into_iter().flatten() {
            let text = content_text(hit.get("content").unwrap_or(&Value::Null));
            results.push(json!({
                "file_id": hit.get("file_id").cloned().unwrap_or(Value::Null),
                "filename": hit.get("filename").cloned().unwrap_or(Value::Null),
                "score": hit.get("score").cloned().unwrap_or(Value::Null),
                "attributes": hit.get("attributes").cloned().unwrap_or_else(|| json!({})),
                "text": text,
            }));
        }
    }
    let mut text = format!(
        "knowledge_search tool found {} chunks:\nBEGIN of knowledge_search tool results.\n",
        results.len()
    );
    for (i, r) in results.iter().enumerate() {
        text.push_str(&format!(
            "[{}] document_id: {}, score: {}",
            i + 1,
            r["file_id"].as_str().unwrap_or(""),
            r["score"]
        ));
        if r["attributes"].as_object().is_some_and(|a| !a.is_empty()) {
            text.push_str(&format!(", attributes: {}", r["attributes"]));
        }
        text.push_str(&format!("\n{}\n", r["text"].as_str().unwrap_or("")));
    }
    text.push_str("END of knowledge_search tool results.\n");
    text.push_str(&format!(
        "The above results were retrieved to help answer the user's query: \"{query}\". \
         Use them as supporting information only in answering this query.\n"
    ));
    (results, text)
}

#[cfg(test)]
#[path = "turn_tests.rs"]
mod tests;
