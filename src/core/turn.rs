//! The orchestration state machine for one `create_openai_response` call.
//!
//! It is sans-IO: `next_action` says what I/O is needed (look up a tool, list an MCP server's tools,
//! call inference, invoke a tool, store the record), the driver performs it and feeds the result back
//! (`provide_tool_def`, `text_delta`/`tool_call_delta`/`end_inference`, `tool_result`, `tool_failed`,
//! `stored`). Stream events queue up in the shared `Output` as they happen; the driver drains them.
//!
//! Where each rule lives: the chunks of one inference round become items in `round.rs` (strict
//! nesting, reasoning, refusals); server-side tool calls run in `tool_calls.rs`; this file holds the
//! phases, the tool lookups, the loop over rounds and the end of the response.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{json, Value};

use super::chat::{self, ChatContent, ChatMessage, ToolCall, ToolCallFunction};
use super::citations::{CitationFiles, CitationStream, Cited};
use super::compaction;
use super::compaction_trigger::{self, Compacting};
use super::error::{CoreError, Result};
use super::events::{DeltaKind, Event, EventBody, Marker, ResponseEventKind};
use super::ids::{new_id, now_unix};
use super::items::{self, Approval, Item, Tool};
use super::mcp::{self, Answer};
use super::output::Output;
use super::request::RequestOptions;
use super::response::{Response, Shape};
use super::round::{CallKind, CallPiece, Classify, ClientShape, Ending, Round};
use super::think::ThinkSplitter;
use super::tool_calls::Execution;
use super::url_citations::{url_citation, LinkScanner, Linked};
use super::web_search::Source;

pub use super::round::DirectDelta;

/// What the caller asked for, plus the few switches where the hosts differ.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// Generate stream events (a streamed request). Off, nothing is built that nobody reads.
    pub emit_events: bool,
    /// Inference calls allowed in one turn (llama-stack's `max_infer_iters`).
    pub max_rounds: u32,
    /// Ask inference for a chunk stream (0.2.12 always does; 0.2.7 only for streamed requests).
    pub stream_inference: bool,
    /// Pass `response_format` to inference (0.2.12 does, 0.2.7 has no such argument).
    pub send_response_format: bool,
    /// Accept `file_search` and `mcp` tools. The 0.2.7 contract has no vector store API to search
    /// and no MCP client, so there they are refused up front rather than failing halfway.
    pub extended_tools: bool,
    /// Split a leading `<think>…</think>` out of the text into a reasoning item (off by default).
    pub split_think: bool,
    /// Every option of the request, parsed and validated (see `request.rs`); echoed on the response.
    pub options: RequestOptions,
    /// The record the host stores (llama-stack's own shape, or the full object).
    pub record_shape: Shape,
    /// OGX's file_search: a fixed `file_search(query)` chat tool (no tool-group lookup), search
    /// results given to the model with `cite as <|file-id|>` lines, citation markers in the answer
    /// turned into `file_citation` annotations (see `citations.rs`), and the call's `results` in the
    /// response only when `include` asks for `file_search_call.results` (always in the record).
    /// Off: llama-stack 0.2.12's `knowledge_search` tool and text, results always shown.
    pub file_search_citations: bool,
    /// Send `developer` messages to the model as `system` messages, for chat servers that do not know
    /// the developer role (Codex CLI sends its instructions as developer messages).
    pub developer_as_system: bool,
    /// Accept a final `compaction_trigger` input item: the turn then compacts the history instead
    /// of answering (see `compaction_trigger.rs`). Off: the item is refused naming it.
    pub compaction_trigger: bool,
}

/// I/O the driver must perform next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `tool_groups_api.get_tool(name)`, answered with `provide_tool_def` (or `tool_failed`: the host
    /// cannot serve the tool, which is then left out).
    GetToolDef { name: String },
    /// `list_mcp_tools(endpoint, headers)`, answered with `provide_mcp_tools` (or `tool_failed`).
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
        /// The other Chat Completions parameters the request sets (`max_tokens`, `top_p`,
        /// `tool_choice`, `parallel_tool_calls`, ...): the host passes those its inference API takes.
        params: Value,
    },
    /// `tool_runtime_api.invoke_tool(tool_name=, kwargs=)`, answered with `tool_result`/`tool_failed`.
    /// `search_options`: the web_search tool's options for a search backend that can narrow its
    /// query (`WebSearchOptions::to_driver`); the core filters the results in any case.
    InvokeTool {
        name: String,
        arguments: Value,
        search_options: Option<Value>,
    },
    /// `invoke_mcp_tool(endpoint, headers, tool_name, kwargs)`, answered with `tool_result`/`tool_failed`.
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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    ToolDef { tool: usize, name: &'static str },
    Mcp { tool: usize, server: usize },
}

#[derive(Debug)]
pub(super) struct McpServer {
    pub label: String,
    pub url: String,
    pub headers: Option<Value>,
    pub allowed: Option<Vec<String>>,
    pub approval: Approval,
}

/// Which called names are the client's functions and which are server-side tools.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    function_names: HashSet<String>,
    server_tools: HashMap<String, CallKind>,
    /// Chat function names that stand for a namespaced function, a custom tool or a tool search.
    client_shapes: HashMap<String, ClientShape>,
}

impl Classify for Catalog {
    fn classify(&self, name: &str) -> CallKind {
        if self.function_names.contains(name) {
            return CallKind::Function;
        }
        // A name the request did not offer is handed back to the client as a function call.
        self.server_tools
            .get(name)
            .copied()
            .unwrap_or(CallKind::Function)
    }

    fn client_shape(&self, name: &str) -> ClientShape {
        self.client_shapes.get(name).cloned().unwrap_or_default()
    }
}

/// The Codex-era tool and item types (custom, namespace, tool_search) only fit OpenAI's full record shape.
fn refuse_codex_types(tools: &[Tool], input: &[Item]) -> Result<()> {
    for (i, tool) in tools.iter().enumerate() {
        let kind = match tool {
            Tool::Custom { .. } => "custom",
            Tool::Namespace { .. } => "namespace",
            Tool::ToolSearch { .. } => "tool_search",
            _ => continue,
        };
        return Err(CoreError::invalid(
            format!("tools[{i}].type"),
            format!("tool type '{kind}' is not supported by the llama-stack contract"),
        ));
    }
    for (i, item) in input.iter().enumerate() {
        let kind = match item {
            Item::CustomToolCall { .. } => "custom_tool_call",
            Item::CustomToolCallOutput { .. } => "custom_tool_call_output",
            Item::ToolSearchCall { .. } => "tool_search_call",
            Item::ToolSearchOutput { .. } => "tool_search_output",
            _ => continue,
        };
        return Err(CoreError::invalid(
            format!("input[{i}].type"),
            format!("item type '{kind}' is not supported by the llama-stack contract"),
        ));
    }
    Ok(())
}

impl Catalog {
    /// Offer a client-side tool as the chat function `chat_name`, coming back as `shape`.
    fn client_tool(&mut self, chat_name: String, shape: ClientShape) {
        self.function_names.insert(chat_name.clone());
        if shape != ClientShape::Function {
            self.client_shapes.insert(chat_name, shape);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
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

/// Why a response ended `incomplete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncompleteReason {
    MaxOutputTokens,
    ContentFilter,
}

impl IncompleteReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IncompleteReason::MaxOutputTokens => "max_output_tokens",
            IncompleteReason::ContentFilter => "content_filter",
        }
    }
}

pub struct Turn {
    pub(super) cfg: TurnConfig,
    response_id: String,
    /// The input as it will be stored (llama-stack stores the whole re-hydrated input).
    stored_input: Vec<Item>,
    pub(super) messages: Vec<ChatMessage>,
    pub(super) tools: Vec<Tool>,
    /// Chat tool definitions, one slot per request tool, filled as lookups complete.
    chat_tools: Vec<Vec<Value>>,
    chat_tools_json: Option<String>,
    /// The chat `tool_choice` the request's `tool_choice` became.
    chat_tool_choice: Option<Value>,
    catalog: Catalog,
    pub(super) mcp_servers: Vec<McpServer>,
    lookups: Vec<Lookup>,
    next_lookup: usize,
    /// The open `mcp_list_tools` item while its listing is under way.
    listing: Option<(usize, String)>,
    pub(super) out: Output,
    round: Round,
    rounds_done: u32,
    /// The `<think>` splitter of the current round, when the option is on.
    think: Option<ThinkSplitter>,
    /// How the current round's stream said it ended.
    round_ending: Ending,
    incomplete: Option<IncompleteReason>,
    /// Server-side calls of the last round waiting to run, and the one running.
    pub(super) queue: VecDeque<Execution>,
    pub(super) running: Option<Execution>,
    /// A round returned function calls to the client: the turn ends after its server calls.
    stop_after_round: bool,
    pub(super) phase: Phase,
    final_response: Option<Response>,
    /// Things the driver should log once (a tool left out because the host cannot serve it).
    warnings: Vec<String>,
    /// The response object as it builds up: the request's options echoed, usage summed.
    response: Response,
    /// Built-in tool calls run so far (`max_tool_calls` caps them).
    pub(super) tool_calls_run: u64,
    /// The output's `mark` when the current inference round began (`refuse` rolls back to it).
    round_mark: (usize, u64),
    /// MCP approvals answered in this request, acted on before the first inference.
    pub(super) answers: Vec<Answer>,
    /// Inference calls refused for a too long context, each answered by dropping the oldest turn.
    truncations: u32,
    /// The files this response's searches returned, best-scored first (citations).
    pub(super) citation_files: CitationFiles,
    /// Takes citation markers out of this round's text, once a search returned files.
    cite: Option<CitationStream>,
    /// File search results left out of the response (`include` did not ask for them), by output
    /// index: the stored record keeps them.
    pub(super) hidden_results: Vec<(usize, Vec<Value>)>,
    /// The input ended with a `compaction_trigger`: the one inference call writes its summary.
    compacting: Option<Compacting>,
    /// The results this response's web searches gave the model, in order.
    pub(super) web_sources: Vec<Source>,
    /// Finds links citing them in this round's text, once a web search returned results.
    links: Option<LinkScanner>,
}

impl Turn {
    /// Build a turn from the request's `input` (string or item list, already merged with any previous
    /// response) and `tools`. Every malformed part is reported here, before any I/O.
    pub fn new(cfg: TurnConfig, input: &Value, tools: &Value) -> Result<Turn> {
        let before_trigger = compaction_trigger::split(input)?;
        if let (Some(_), false, Value::Array(items)) =
            (&before_trigger, cfg.compaction_trigger, input)
        {
            return Err(CoreError::invalid(
                format!("input[{}].type", items.len().saturating_sub(1)),
                "item type 'compaction_trigger' is not supported by this server",
            ));
        }
        let compacting = before_trigger.is_some().then(Compacting::new);
        let input = before_trigger.as_ref().unwrap_or(input);
        let mut stored_input = items::parse_input(input)?;
        if input.is_string() {
            // llama-stack gives a synthesised string message an id when it stores it.
            if let Some(Item::Message { id, .. }) = stored_input.first_mut() {
                *id = Some(new_id("msg_"));
            }
        }
        if cfg.record_shape != Shape::Full {
            // llama-stack's records (and its input union) have no compaction item.
            if let Some(i) = stored_input
                .iter()
                .position(|item| matches!(item, Item::Compaction { .. }))
            {
                return Err(CoreError::invalid(
                    format!("input[{i}].type"),
                    "item type 'compaction' is not supported by the llama-stack contract",
                ));
            }
        }
        let tools = items::parse_tools(tools)?;
        if cfg.record_shape != Shape::Full {
            // llama-stack's records have no custom, namespaced or tool-search calls.
            refuse_codex_types(&tools, &stored_input)?;
        }
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
        if let Some(instructions) = &cfg.options.instructions {
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
        if cfg.developer_as_system {
            for message in &mut messages {
                if let ChatMessage::Developer { content } = message {
                    *message = ChatMessage::System {
                        content: std::mem::replace(content, ChatContent::Text(String::new())),
                    };
                }
            }
        }
        if cfg.send_response_format {
            cfg.options.response_format()?;
        }
        if compacting.is_some() {
            messages.push(ChatMessage::User {
                content: ChatContent::Text(compaction::SUMMARY_PROMPT.to_owned()),
            });
        }

        cfg.options.tool_choice.check_static(&tools)?;
        // OpenAI's and OGX's response ids begin `resp_`; llama-stack 0.2.x's `resp-`.
        let response_id = new_id(if cfg.record_shape == Shape::Full {
            "resp_"
        } else {
            "resp-"
        });
        let created_at = now_unix();
        let response_id_for_response = response_id.clone();
        let mut turn = Turn {
            out: Output::new(cfg.emit_events, response_id.clone()),
            response_id,
            stored_input,
            messages,
            chat_tools: vec![Vec::new(); tools.len()],
            chat_tools_json: None,
            catalog: Catalog::default(),
            mcp_servers: Vec::new(),
            lookups: Vec::new(),
            next_lookup: 0,
            listing: None,
            round: Round::new(),
            rounds_done: 0,
            round_ending: Ending::Completed,
            think: None,
            incomplete: None,
            queue: VecDeque::new(),
            running: None,
            stop_after_round: false,
            phase: Phase::Start,
            final_response: None,
            warnings: Vec::new(),
            response: Response::new(
                response_id_for_response,
                created_at,
                &cfg.options,
                tools.iter().map(Tool::echo).collect(),
            ),
            tool_calls_run: 0,
            round_mark: (0, 0),
            answers: Vec::new(),
            truncations: 0,
            citation_files: CitationFiles::default(),
            cite: None,
            hidden_results: Vec::new(),
            compacting,
            web_sources: Vec::new(),
            links: None,
            chat_tool_choice: None,
            tools: Vec::new(),
            cfg,
        };
        if turn.compacting.is_some() {
            // The summarization call offers no tools, runs no approvals; the stored input is the
            // compacted window's user messages (with the output's compaction item: the window).
            turn.stored_input = compaction::window_user_messages(&turn.stored_input);
            turn.tools = tools;
            return Ok(turn);
        }
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
                    turn.catalog.function_names.insert(name.clone());
                }
                Tool::Custom {
                    name,
                    description,
                    format,
                } => {
                    turn.chat_tools[i].push(chat::custom_tool(
                        name,
                        description.as_deref(),
                        format.as_ref(),
                    ));
                    turn.catalog.client_tool(
                        name.clone(),
                        ClientShape::Custom {
                            namespace: None,
                            name: name.clone(),
                        },
                    );
                }
                Tool::Namespace {
                    name: ns, tools, ..
                } => {
                    for inner in tools {
                        let (chat_tool, chat_name, shape) = match inner {
                            Tool::Function {
                                name,
                                description,
                                parameters,
                                strict,
                            } => {
                                let chat_name = chat::chat_tool_name(Some(ns), name);
                                (
                                    chat::function_tool(
                                        &chat_name,
                                        description.as_deref(),
                                        parameters.as_ref(),
                                        *strict,
                                    ),
                                    chat_name,
                                    ClientShape::Namespaced {
                                        namespace: ns.clone(),
                                        name: name.clone(),
                                    },
                                )
                            }
                            Tool::Custom {
                                name,
                                description,
                                format,
                            } => {
                                let chat_name = chat::chat_tool_name(Some(ns), name);
                                (
                                    chat::custom_tool(
                                        &chat_name,
                                        description.as_deref(),
                                        format.as_ref(),
                                    ),
                                    chat_name,
                                    ClientShape::Custom {
                                        namespace: Some(ns.clone()),
                                        name: name.clone(),
                                    },
                                )
                            }
                            // The parser lets only functions and custom tools into a namespace.
                            _ => continue,
                        };
                        turn.chat_tools[i].push(chat_tool);
                        turn.catalog.client_tool(chat_name, shape);
                    }
                }
                Tool::ToolSearch {
                    description,
                    parameters,
                } => {
                    let default_parameters = json!({
                        "type": "object",
                        "properties": {"query": {"type": "string", "description": "What to search the available tools for"}},
                        "required": ["query"],
                    });
                    turn.chat_tools[i].push(chat::function_tool(
                        chat::TOOL_SEARCH,
                        Some(description.as_deref().unwrap_or(
                            "Search for more tools to use; the tools found become available.",
                        )),
                        Some(parameters.as_ref().unwrap_or(&default_parameters)),
                        None,
                    ));
                    turn.catalog
                        .client_tool(chat::TOOL_SEARCH.to_owned(), ClientShape::ToolSearch);
                }
                Tool::WebSearch(_) => {
                    if !web_search_seen {
                        web_search_seen = true;
                        turn.lookups.push(Lookup::ToolDef {
                            tool: i,
                            name: "web_search",
                        });
                    }
                }
                Tool::FileSearch { .. } if turn.cfg.file_search_citations => {
                    // OGX's builtin offers a fixed tool; no tool group is looked up.
                    turn.chat_tools[i].push(chat::function_tool(
                        "file_search",
                        Some("Search files for relevant information"),
                        Some(&json!({
                            "type": "object",
                            "properties": {"query": {"type": "string", "description": "The search query"}},
                            "required": ["query"],
                        })),
                        None,
                    ));
                    turn.catalog
                        .server_tools
                        .entry("file_search".to_owned())
                        .or_insert(CallKind::FileSearch(i));
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
                    require_approval,
                    ..
                } => {
                    let server = turn.mcp_servers.len();
                    turn.mcp_servers.push(McpServer {
                        label: server_label.clone(),
                        url: server_url.clone(),
                        headers: headers.clone(),
                        allowed: allowed_tools.clone(),
                        approval: require_approval.clone(),
                    });
                    let context = std::mem::take(&mut turn.stored_input);
                    let listing =
                        mcp::reusable_listing(&context, server_label, allowed_tools.as_deref());
                    let reused = match listing {
                        Some(listed) => {
                            turn.register_mcp_tools(i, server, listed)?;
                            true
                        }
                        None => false,
                    };
                    turn.stored_input = context;
                    if !reused {
                        turn.lookups.push(Lookup::Mcp { tool: i, server });
                    }
                }
            }
        }
        if turn.cfg.record_shape == Shape::Full {
            let context = std::mem::take(&mut turn.stored_input);
            let answered = turn.collect_answers(&context);
            turn.stored_input = context;
            answered?;
        } else {
            mcp::refuse_approvals(&tools)?;
        }
        turn.tools = tools;
        Ok(turn)
    }

    pub fn response_id(&self) -> &str {
        &self.response_id
    }

    /// The input ended with a `compaction_trigger`: this turn compacts instead of answering.
    pub fn compacting(&self) -> bool {
        self.compacting.is_some()
    }

    /// Events generated since the last drain, oldest first.
    pub fn drain_events(&mut self) -> std::collections::vec_deque::Drain<'_, Event> {
        self.out.drain()
    }

    pub fn pending_events(&self) -> usize {
        self.out.pending()
    }

    pub fn pop_event(&mut self) -> Option<Event> {
        self.out.pop()
    }

    /// The finished response (completed, incomplete or failed), once there is one.
    pub fn final_response(&self) -> Option<&Response> {
        self.final_response.as_ref()
    }

    /// The response as it stands, in OpenAI's full shape, with `status` one of `queued`, `in_progress` or
    /// `cancelled` (a background response seen before it ends, or cancelled); `None` for another status.
    pub fn snapshot_json(&self, status: &str) -> Option<String> {
        use super::response::status as s;
        let status = [s::QUEUED, s::IN_PROGRESS, s::CANCELLED]
            .into_iter()
            .find(|known| *known == status)?;
        let mut response = self.snapshot("in_progress", None);
        response.status = status;
        Some(response.to_json(Shape::Full))
    }

    /// The input the record stores (JSON), as the final `Store` action gives it: for a record written
    /// before the response ends (a background response's `queued` row).
    pub fn stored_input_json(&self) -> Result<String> {
        serde_json::to_string(&self.stored_input).map_err(|e| CoreError::protocol(e.to_string()))
    }

    /// Messages for the driver's log (each once): tools left out because the host cannot serve them.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The response object as it stands, with `status` (and the error of a failed one).
    fn snapshot(&self, status: &'static str, error: Option<(&str, &str)>) -> Response {
        let mut response = self.response.clone();
        response.output = self.out.items.clone();
        match (status, error, self.incomplete) {
            (_, Some((code, message)), _) => response.fail(code, message),
            ("completed", _, _) => response.complete(now_unix()),
            ("incomplete", _, Some(reason)) => response.incomplete(reason.as_str()),
            _ => {}
        }
        response
    }

    /// `status`: `queued` or `in_progress` (the response's status in the event).
    fn emit_response_event(&mut self, kind: ResponseEventKind, status: &'static str) {
        if self.out.emits() {
            let mut response = Box::new(self.snapshot(status, None));
            response.status = status;
            self.out.emit(EventBody::Response { kind, response });
        }
    }

    pub(super) fn expect_phase(&self, phase: Phase, what: &str) -> Result<()> {
        self.expect(phase, what)
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
                    // A background response starts `queued`, as OpenAI's stream does: `response.created`
                    // and `response.queued` with status `queued`, then `response.in_progress`.
                    if self.response.background {
                        self.emit_response_event(ResponseEventKind::Created, "queued");
                        self.emit_response_event(ResponseEventKind::Queued, "queued");
                    } else {
                        self.emit_response_event(ResponseEventKind::Created, "in_progress");
                    }
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
                        let output_index = self.out.open(Item::McpListTools {
                            id: item_id.clone(),
                            server_label: label.clone(),
                            tools: Vec::new(),
                            error: None,
                        });
                        self.out
                            .marker(Marker::McpListToolsInProgress, &item_id, output_index);
                        self.listing = Some((output_index, item_id));
                        self.phase = Phase::AwaitLookup;
                        let server = &self.mcp_servers[server];
                        return Ok(Action::ListMcpTools {
                            server_label: label,
                            server_url: server.url.clone(),
                            headers: server.headers.clone(),
                        });
                    }
                    None if self.compacting.is_some() => self.phase = Phase::Infer,
                    None => {
                        let names: Vec<Vec<String>> = self
                            .chat_tools
                            .iter()
                            .map(|defs| {
                                defs.iter()
                                    .map(|d| {
                                        d["function"]["name"].as_str().unwrap_or("").to_owned()
                                    })
                                    .collect()
                            })
                            .collect();
                        let selection = self.cfg.options.tool_choice.apply(&self.tools, &names)?;
                        self.chat_tool_choice = selection.chat_tool_choice.clone();
                        let all: Vec<&Value> = selection.filter(self.chat_tools.iter().flatten());
                        self.chat_tools_json = if all.is_empty() {
                            None
                        } else {
                            Some(
                                serde_json::to_string(&all)
                                    .map_err(|e| CoreError::protocol(e.to_string()))?,
                            )
                        };
                        self.answer_approvals();
                        self.phase = if self.queue.is_empty() {
                            Phase::Infer
                        } else {
                            Phase::Execute
                        };
                    }
                },
                Phase::Infer => {
                    self.round_mark = self.out.mark();
                    self.rounds_done += 1;
                    self.round = Round::new();
                    self.round_ending = Ending::Completed;
                    self.think = self.cfg.split_think.then(ThinkSplitter::default);
                    self.cite = None;
                    if let Some(compacting) = &mut self.compacting {
                        compacting.open(&mut self.out);
                        self.think = None;
                    }
                    if let Some((file_id, filename)) = self.citation_files.top() {
                        self.round.set_fallback_citation(file_id, filename);
                        self.cite = Some(CitationStream::default());
                    }
                    self.links = (!self.web_sources.is_empty()).then(LinkScanner::default);
                    self.phase = Phase::Inferring;
                    let messages = serde_json::to_string(&self.messages)
                        .map_err(|e| CoreError::protocol(e.to_string()))?;
                    return Ok(Action::Infer {
                        messages,
                        tools: self.chat_tools_json.clone(),
                        stream: self.cfg.stream_inference,
                        response_format: if self.cfg.send_response_format {
                            Some(self.cfg.options.response_format()?)
                        } else {
                            None
                        },
                        params: self.chat_params(),
                    });
                }
                Phase::Execute => match self.queue.pop_front() {
                    Some(exec) if self.cap_reached() => {
                        let cap = self.cfg.options.max_tool_calls.unwrap_or(0);
                        self.messages.push(ChatMessage::Tool {
                            content: format!("Error: the limit of {cap} built-in tool calls (max_tool_calls) is reached; this call was not run."),
                            tool_call_id: exec.call_id,
                        });
                    }
                    Some(exec) => {
                        self.tool_calls_run += 1;
                        if let Some(action) = self.start_execution(exec) {
                            self.phase = Phase::AwaitTool;
                            return Ok(action);
                        }
                    }
                    None => {
                        self.phase = if !self.stop_after_round
                            && self.incomplete.is_none()
                            && self.rounds_done < self.cfg.max_rounds
                        {
                            Phase::Infer
                        } else {
                            Phase::Finish
                        };
                    }
                },
                Phase::Finish => {
                    let status = if self.incomplete.is_some() {
                        "incomplete"
                    } else {
                        "completed"
                    };
                    let response = self.snapshot(status, None);
                    self.final_response = Some(response);
                    if self.cfg.options.store {
                        self.phase = Phase::AwaitStore;
                        let response = self.record_json();
                        let input = serde_json::to_string(&self.stored_input)
                            .map_err(|e| CoreError::protocol(e.to_string()))?;
                        return Ok(Action::Store { response, input });
                    }
                    self.phase = Phase::Complete;
                }
                Phase::Complete => {
                    if self.out.emits() {
                        if let Some(response) = self.final_response.clone() {
                            let kind = if self.incomplete.is_some() {
                                ResponseEventKind::Incomplete
                            } else {
                                ResponseEventKind::Completed
                            };
                            let response = Box::new(response);
                            self.out.emit(EventBody::Response { kind, response });
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

    /// The record to store: the final response, with the file search results `include` left out.
    fn record_json(&self) -> String {
        let Some(response) = &self.final_response else {
            return String::new();
        };
        if self.hidden_results.is_empty() {
            return response.to_json(self.cfg.record_shape);
        }
        let mut record = response.clone();
        for (index, hidden) in &self.hidden_results {
            if let Some(Item::FileSearchCall { results, .. }) = record.output.get_mut(*index) {
                *results = Some(hidden.clone());
            }
        }
        record.to_json(self.cfg.record_shape)
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
        self.catalog.server_tools.insert(name.to_owned(), kind);
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
        let tools_json = self.register_mcp_tools(tool, server, listed)?;
        if let Some((output_index, item_id)) = self.listing.take() {
            self.out
                .marker(Marker::McpListToolsCompleted, &item_id, output_index);
            let item = Item::McpListTools {
                id: item_id,
                server_label: self.mcp_servers[server].label.clone(),
                tools: tools_json,
                error: None,
            };
            self.out.close(output_index, item);
        }
        self.next_lookup += 1;
        self.phase = Phase::Lookups;
        Ok(())
    }

    /// Offer an MCP server's listed tools (those its `allowed_tools` lets through) to the model;
    /// returns them as the `mcp_list_tools` item lists them.
    fn register_mcp_tools(
        &mut self,
        tool: usize,
        server: usize,
        listed: &[Value],
    ) -> Result<Vec<Value>> {
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
            self.catalog
                .server_tools
                .entry(name.to_owned())
                .or_insert(CallKind::Mcp(server));
        }
        Ok(tools_json)
    }

    /// A tool lookup or a tool call the driver performed raised (or the host cannot serve the tool).
    /// Only that tool suffers: a lookup leaves the tool out of what the model is offered (an MCP
    /// listing ends `mcp_list_tools.failed`), a call is marked `failed` and the model is told.
    pub fn tool_failed(&mut self, message: &str) -> Result<()> {
        match self.phase {
            Phase::AwaitLookup => {
                match self.lookups.get(self.next_lookup).cloned() {
                    Some(Lookup::ToolDef { name, .. }) => self.warnings.push(format!(
                        "the tool '{name}' is left out of what the model is offered: {message}"
                    )),
                    Some(Lookup::Mcp { server, .. }) => {
                        self.warnings.push(format!(
                            "listing the tools of MCP server '{}' failed: {message}",
                            self.mcp_servers[server].label
                        ));
                        self.fail_listing(message);
                    }
                    None => return Err(CoreError::protocol("tool_failed answers no lookup")),
                }
                self.next_lookup += 1;
                self.phase = Phase::Lookups;
                Ok(())
            }
            Phase::AwaitTool => {
                let exec = self
                    .running
                    .take()
                    .ok_or_else(|| CoreError::protocol("tool_failed without a running call"))?;
                self.finish_execution(exec, Err(message.to_owned()), None);
                self.phase = Phase::Execute;
                Ok(())
            }
            _ => self.expect(Phase::AwaitTool, "tool_failed"),
        }
    }

    /// Close the open `mcp_list_tools` item (if any) as failed, carrying `message` as its `error`.
    fn fail_listing(&mut self, message: &str) {
        if let Some((output_index, item_id)) = self.listing.take() {
            self.out
                .marker(Marker::McpListToolsFailed, &item_id, output_index);
            let label = match self.out.items.get(output_index) {
                Some(Item::McpListTools { server_label, .. }) => server_label.clone(),
                _ => String::new(),
            };
            self.out.close(
                output_index,
                Item::McpListTools {
                    id: item_id,
                    server_label: label,
                    tools: Vec::new(),
                    error: Some(message.to_owned()),
                },
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // Inference results: the hot path. Called once per chunk.

    fn inferring(&self, what: &str) -> Result<()> {
        if self.phase == Phase::Inferring {
            Ok(())
        } else {
            self.expect(Phase::Inferring, what)
        }
    }

    /// A piece of the assistant's text. Empty pieces are ignored.
    pub fn text_delta(&mut self, text: &str) -> Result<()> {
        self.piece(DeltaKind::OutputText, text)
    }

    /// A piece of the model's reasoning (`reasoning_content` / `reasoning`).
    pub fn reasoning_delta(&mut self, text: &str) -> Result<()> {
        self.piece(DeltaKind::ReasoningText, text)
    }

    /// A piece of a refusal (`delta.refusal`).
    pub fn refusal_delta(&mut self, text: &str) -> Result<()> {
        self.piece(DeltaKind::Refusal, text)
    }

    /// A piece of text, refusal or reasoning.
    pub fn piece(&mut self, kind: DeltaKind, text: &str) -> Result<()> {
        self.inferring("text_delta")?;
        if let Some(compacting) = &mut self.compacting {
            // Only the answer's text is the summary (reasoning and refusals are not kept).
            if kind == DeltaKind::OutputText {
                compacting.piece(&mut self.out, text);
            }
            return Ok(());
        }
        match (&mut self.think, kind) {
            (Some(think), DeltaKind::OutputText) => {
                for (kind, piece) in think.split(text) {
                    self.route(kind, &piece);
                }
            }
            _ => self.route(kind, text),
        }
        Ok(())
    }

    /// Output text goes through the citation filter once a search returned files.
    fn route(&mut self, kind: DeltaKind, text: &str) {
        match (&mut self.cite, kind) {
            (Some(cite), DeltaKind::OutputText) => {
                for cited in cite.feed(text, &self.citation_files) {
                    self.cited(cited);
                }
            }
            (None, DeltaKind::OutputText) => self.linked_text(text),
            _ => self.round.text(&mut self.out, kind, text),
        }
    }

    /// Output text, with a `url_citation` after each link that cites a web search result.
    fn linked_text(&mut self, text: &str) {
        let Some(links) = self.links.as_mut() else {
            return self.round.text(&mut self.out, DeltaKind::OutputText, text);
        };
        for linked in links.feed(text, &self.web_sources) {
            match linked {
                Linked::Text(text) => self.round.text(&mut self.out, DeltaKind::OutputText, &text),
                Linked::Cite { chars, source } => self.round.annotate(&mut self.out, |end| {
                    let start = end.checked_sub(chars)?;
                    Some(url_citation(&source.url, &source.title, start, end))
                }),
            }
        }
    }

    fn cited(&mut self, cited: Cited) {
        match cited {
            Cited::Text(text) => self.linked_text(&text),
            Cited::Cite(file_id) => {
                if let Some(filename) = self.citation_files.filename(&file_id) {
                    let filename = filename.to_owned();
                    self.round.cite(&mut self.out, &file_id, &filename);
                }
            }
        }
    }

    /// The round's text ended: what the citation filter withheld is text after all.
    fn flush_text(&mut self) {
        if let Some(mut think) = self.think.take() {
            for (kind, piece) in think.finish() {
                self.route(kind, &piece);
            }
        }
        if let Some(rest) = self.cite.as_mut().and_then(CitationStream::finish) {
            self.linked_text(&rest);
        }
    }

    /// The per-chunk fast path of `text_delta`: when the message is already being streamed and
    /// nothing is queued, nothing but the delta event follows, and instead of queueing it (allocating
    /// its text) the turn hands back what the caller needs to build it from the text it already holds.
    /// `None`: use `drain`/`pop_event`.
    pub fn text_delta_direct(&mut self, text: &str) -> Result<Option<DirectDelta>> {
        self.piece_direct(DeltaKind::OutputText, text)
    }

    pub fn piece_direct(&mut self, kind: DeltaKind, text: &str) -> Result<Option<DirectDelta>> {
        if self.phase == Phase::Inferring
            && self.think.is_none()
            && self.cite.is_none()
            && self.compacting.is_none()
            && self.links.is_none()
        {
            if let Some(d) = self.round.text_direct(&mut self.out, kind, text) {
                return Ok(Some(d));
            }
        }
        self.piece(kind, text).map(|()| None)
    }

    /// A piece of a tool call, aggregated by `index` (any integer: it is only a key). Every part is
    /// optional: servers send the id and name once, then argument pieces (which may be `None` or empty).
    pub fn tool_call_delta(
        &mut self,
        index: i64,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Option<&str>,
    ) -> Result<()> {
        self.call_piece(index, id, name, arguments, false)
            .map(|_| ())
    }

    /// The per-chunk fast path of `tool_call_delta`, as `text_delta_direct` is for text: when the
    /// piece only extends the arguments of the call being streamed, the delta is handed back.
    pub fn tool_call_delta_direct(
        &mut self,
        index: i64,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Option<&str>,
    ) -> Result<Option<DirectDelta>> {
        self.call_piece(index, id, name, arguments, true)
    }

    fn call_piece(
        &mut self,
        key: i64,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Option<&str>,
        direct: bool,
    ) -> Result<Option<DirectDelta>> {
        self.inferring("tool_call_delta")?;
        if self.compacting.is_some() {
            return Ok(None); // no tools were offered: a call the model makes anyway is not kept
        }
        let piece = CallPiece {
            key,
            id,
            name,
            arguments,
        };
        Ok(self
            .round
            .tool_call(&mut self.out, &self.catalog, piece, direct))
    }

    /// The chunk's (or completion's) `finish_reason`: `length` and `content_filter` end the response
    /// `incomplete` after this round; anything else changes nothing.
    pub fn finish_reason(&mut self, reason: &str) -> Result<()> {
        self.inferring("finish_reason")?;
        let reason = match reason {
            "length" => IncompleteReason::MaxOutputTokens,
            "content_filter" => IncompleteReason::ContentFilter,
            _ => return Ok(()),
        };
        self.round_ending = Ending::Incomplete;
        self.incomplete.get_or_insert(reason);
        Ok(())
    }

    /// The token usage inference reported for this round (a Chat Completions `usage` object).
    pub fn usage(&mut self, usage: &Value) {
        if usage.is_object() {
            self.response.add_chat_usage(usage);
        }
    }

    /// The Chat Completions parameters besides model, messages, tools and stream.
    fn chat_params(&self) -> Value {
        let mut params = self.cfg.options.chat_params(self.chat_tools_json.is_some());
        if let (Some(choice), true) = (&self.chat_tool_choice, self.chat_tools_json.is_some()) {
            params.insert("tool_choice".to_owned(), choice.clone());
        }
        // temperature travels as its own argument (every host's inference API has it).
        params.remove("temperature");
        Value::Object(params)
    }

    /// `max_tool_calls` reached: further built-in tool calls are not run (the model is told).
    fn cap_reached(&self) -> bool {
        self.cfg
            .options
            .max_tool_calls
            .is_some_and(|cap| self.tool_calls_run >= cap)
    }

    /// The inference stream (or the one completion) is over: close what it opened and decide what
    /// comes next.
    pub fn end_inference(&mut self) -> Result<()> {
        self.expect(Phase::Inferring, "end_inference")?;
        if let Some(compacting) = &mut self.compacting {
            compacting.finish(&mut self.out);
            self.phase = Phase::Finish;
            return Ok(());
        }
        self.flush_text();
        let result = self
            .round
            .finish(&mut self.out, &self.catalog, self.round_ending);
        let mut tool_calls = Vec::with_capacity(result.calls.len());
        let mut server_calls = Vec::new();
        for call in result.calls {
            if let CallKind::Mcp(server) = call.kind {
                if !call.incomplete
                    && self.incomplete.is_none()
                    && self.needs_approval(server, &call.name)
                {
                    // Not run, and not in the model's history: the response ends asking for approval.
                    self.request_approval(server, call.name, call.arguments);
                    self.stop_after_round = true;
                    continue;
                }
            }
            tool_calls.push(ToolCall {
                index: tool_calls.len() as u32,
                id: call.call_id.clone(),
                kind: "function",
                function: ToolCallFunction {
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                },
            });
            match call.kind {
                CallKind::Function => self.stop_after_round = true,
                kind if !call.incomplete && self.incomplete.is_none() => {
                    server_calls.push(Execution {
                        kind,
                        call_id: call.call_id,
                        name: call.name,
                        arguments: call.arguments,
                        output_index: None,
                        item_id: String::new(),
                        action: None,
                        approval_request_id: None,
                    })
                }
                _ => {}
            }
        }
        if !tool_calls.is_empty() || result.text.is_some() {
            self.messages.push(ChatMessage::Assistant {
                content: result.text.map(ChatContent::Text),
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

    /// Inference refused the call because the context is too long (the driver recognised the error
    /// with `truncation::is_context_length_error`). As OGX's builtin does, whatever `truncation`
    /// says: drop the oldest turn of the conversation and make the call again, at most `max_rounds`
    /// calls in all. `Ok(true)`: the next action is that call. `Ok(false)`: nothing more can be
    /// dropped, and the turn has failed with `context_length_exceeded` (`response.failed` queued).
    /// An error: the round had already produced output, so it cannot be made again; the driver
    /// fails the turn as for any other inference error.
    pub fn truncate_and_retry(&mut self) -> Result<bool> {
        self.expect(Phase::Inferring, "truncate_and_retry")?;
        if !self.round.is_empty() || self.round_ending != Ending::Completed {
            return Err(CoreError::protocol(
                "the inference call already produced output: it cannot be retried",
            ));
        }
        self.truncations += 1;
        if self.truncations < self.cfg.max_rounds
            && super::truncation::drop_oldest_turn(&mut self.messages)
        {
            // The refused call does not count as a round.
            self.rounds_done = self.rounds_done.saturating_sub(1);
            self.phase = Phase::Infer;
            return Ok(true);
        }
        self.fail_with(
            super::truncation::EXHAUSTED_CODE,
            super::truncation::EXHAUSTED_MESSAGE,
        );
        Ok(false)
    }

    /// The answer to `Store`.
    pub fn stored(&mut self) -> Result<()> {
        self.expect(Phase::AwaitStore, "stored")?;
        self.phase = Phase::Complete;
        Ok(())
    }

    /// End the turn as failed: close every open item and emit `response.failed`. The driver calls
    /// this when inference or the store raised mid-stream; nothing is stored afterwards.
    pub fn fail(&mut self, message: &str) {
        self.fail_with("server_error", message);
    }

    /// `fail` with an error code (`server_error`, `invalid_request`, ...).
    pub fn fail_with(&mut self, code: &str, message: &str) {
        if self.phase == Phase::Done {
            return;
        }
        if self.phase == Phase::Start {
            // Failed before its first action (a background response cancelled before its run began):
            // the stream still begins as it would have (`response.created`, and `response.queued` for
            // a background response), then ends.
            if self.response.background {
                self.emit_response_event(ResponseEventKind::Created, "queued");
                self.emit_response_event(ResponseEventKind::Queued, "queued");
            } else {
                self.emit_response_event(ResponseEventKind::Created, "in_progress");
            }
        }
        if let Some(compacting) = &mut self.compacting {
            compacting.finish(&mut self.out);
        } else if self.phase == Phase::Inferring {
            self.flush_text();
            self.round
                .finish(&mut self.out, &self.catalog, Ending::Incomplete);
        }
        self.fail_listing(message);
        if let Some(exec) = self.running.take() {
            self.finish_execution(exec, Err(message.to_owned()), None);
        }
        // Queued calls that never started have no item to close.
        self.queue.clear();
        let response = self.snapshot("failed", Some((code, message)));
        if self.out.emits() {
            self.out.emit(EventBody::Response {
                kind: ResponseEventKind::Failed,
                response: Box::new(response.clone()),
            });
        }
        self.final_response = Some(response);
        self.phase = Phase::Done;
    }
}

#[path = "turn_context.rs"]
mod context;

#[cfg(test)]
#[path = "turn_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "turn_truncation_tests.rs"]
mod truncation_tests;
