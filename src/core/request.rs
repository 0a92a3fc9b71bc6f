//! The create-request's options (everything but `input` and `tools`, which `items` parses), parsed
//! and validated before any I/O, with errors that name the field (`temperature: must be between 0
//! and 2`). Ranges and limits are OpenAI's documented ones; where the Open Responses spec and
//! openai-python disagree, openai-python wins.

use serde_json::{json, Map, Value};

use super::error::{CoreError, Result};
use super::items::{kind_of, Tool};

/// llama-stack's default for `max_infer_iters`.
pub const DEFAULT_MAX_INFER_ITERS: u32 = 10;

/// OpenAI's metadata limits: 16 pairs, keys up to 64 characters, string values up to 512.
pub const METADATA_MAX_PAIRS: usize = 16;
pub const METADATA_MAX_KEY_CHARS: usize = 64;
pub const METADATA_MAX_VALUE_CHARS: usize = 512;

const REASONING_EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh", "max"];
const REASONING_SUMMARIES: &[&str] = &["auto", "concise", "detailed"];
const SERVICE_TIERS: &[&str] = &[
    "auto",
    "default",
    "flex",
    "scale",
    "priority",
    "fast",
    "ultrafast",
];
const TRUNCATIONS: &[&str] = &["auto", "disabled"];
const VERBOSITIES: &[&str] = &["low", "medium", "high"];

/// The `reasoning` option.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reasoning {
    pub effort: Option<&'static str>,
    pub summary: Option<&'static str>,
    /// Deprecated spelling of `summary`; echoed as `summary` when that is not given.
    pub generate_summary: Option<&'static str>,
}

impl Reasoning {
    /// As the response echoes it: `{"effort", "summary"}`, each null when not given.
    pub fn echo(&self) -> Value {
        json!({
            "effort": self.effort,
            "summary": self.summary.or(self.generate_summary),
        })
    }
}

/// Every option of a create request. Optional fields are `None` when the request did not give
/// them (absent or JSON null), so the response can echo OpenAI's defaults while the llama-stack
/// records keep writing null, and inference gets only what was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestOptions {
    pub model: String,
    pub instructions: Option<String>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub top_logprobs: Option<u32>,
    pub max_output_tokens: Option<u64>,
    pub max_tool_calls: Option<u64>,
    /// llama-stack's knob: inference calls allowed in one turn (default 10).
    pub max_infer_iters: u32,
    /// `ToolChoice::Auto` when not given.
    pub tool_choice: ToolChoice,
    /// `None`: not given (OpenAI's default is true; see `parallel_tool_calls()`).
    pub parallel_tool_calls: Option<bool>,
    /// Empty when not given.
    pub metadata: Map<String, Value>,
    pub truncation: Option<&'static str>,
    pub user: Option<String>,
    pub safety_identifier: Option<String>,
    pub prompt_cache_key: Option<String>,
    pub service_tier: Option<&'static str>,
    pub store: bool,
    pub background: bool,
    pub stream: bool,
    /// The `text` option as given (validated), echoed on the response and turned into the chat
    /// `response_format` by `response_format()`.
    pub text: Option<Value>,
    pub reasoning: Option<Reasoning>,
    pub include: Vec<String>,
    pub previous_response_id: Option<String>,
    /// Passed through or echoed only; their top-level type is checked.
    pub conversation: Option<Value>,
    pub prompt: Option<Value>,
    pub context_management: Option<Value>,
    pub client_metadata: Option<Value>,
    pub stream_options: Option<Value>,
}

// ---------------------------------------------------------------------------------------------
// Field readers: `None` for absent or null, a field-path error for the wrong type.

fn given<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn string(value: &Value, path: &str) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(CoreError::invalid(
            path,
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

fn number(value: &Value, path: &str) -> Result<f64> {
    match value.as_f64() {
        Some(n) if value.is_number() => Ok(n),
        _ => Err(CoreError::invalid(
            path,
            format!("must be a number, got {}", kind_of(value)),
        )),
    }
}

fn number_in(value: &Value, path: &str, lo: f64, hi: f64) -> Result<f64> {
    let n = number(value, path)?;
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(CoreError::invalid(
            path,
            format!("must be between {lo} and {hi}, got {n}"),
        ))
    }
}

fn integer(value: &Value, path: &str) -> Result<i64> {
    if let Some(n) = value.as_i64() {
        return Ok(n);
    }
    match value {
        Value::Number(n) if n.is_u64() => Err(CoreError::invalid(path, "is too large")),
        Value::Number(n) => Err(CoreError::invalid(
            path,
            format!("must be an integer, got {n}"),
        )),
        other => Err(CoreError::invalid(
            path,
            format!("must be an integer, got {}", kind_of(other)),
        )),
    }
}

fn positive_integer(value: &Value, path: &str) -> Result<u64> {
    match integer(value, path)? {
        n if n >= 1 => Ok(n as u64),
        n => Err(CoreError::invalid(
            path,
            format!("must be a positive integer, got {n}"),
        )),
    }
}

fn boolean(value: &Value, path: &str) -> Result<bool> {
    value.as_bool().ok_or_else(|| {
        CoreError::invalid(path, format!("must be a boolean, got {}", kind_of(value)))
    })
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| {
        CoreError::invalid(path, format!("must be an object, got {}", kind_of(value)))
    })
}

/// One of a closed set of strings, returned as the set's own `&'static str`.
fn one_of(value: &Value, path: &str, what: &str, allowed: &[&'static str]) -> Result<&'static str> {
    let s = match value {
        Value::String(s) => s.as_str(),
        other => {
            return Err(CoreError::invalid(
                path,
                format!("must be a string, got {}", kind_of(other)),
            ))
        }
    };
    allowed.iter().copied().find(|a| *a == s).ok_or_else(|| {
        CoreError::invalid(
            path,
            format!("unknown {what} '{s}' (expected {})", allowed.join(", ")),
        )
    })
}

fn limited_string(value: &Value, path: &str, max_chars: usize) -> Result<String> {
    let s = string(value, path)?;
    let n = s.chars().count();
    if n > max_chars {
        return Err(CoreError::invalid(
            path,
            format!("at most {max_chars} characters, got {n}"),
        ));
    }
    Ok(s)
}

fn parse_metadata(value: &Value) -> Result<Map<String, Value>> {
    let obj = object(value, "metadata")?;
    if obj.len() > METADATA_MAX_PAIRS {
        return Err(CoreError::invalid(
            "metadata",
            format!("at most {METADATA_MAX_PAIRS} keys, got {}", obj.len()),
        ));
    }
    for (key, v) in obj {
        let n = key.chars().count();
        if n > METADATA_MAX_KEY_CHARS {
            return Err(CoreError::invalid(
                "metadata",
                format!("keys are at most {METADATA_MAX_KEY_CHARS} characters, '{key}' has {n}"),
            ));
        }
        limited_string(v, &format!("metadata.{key}"), METADATA_MAX_VALUE_CHARS)?;
    }
    Ok(obj.clone())
}

fn parse_text(value: &Value) -> Result<Value> {
    let obj = object(value, "text")?;
    if let Some(format) = given(obj, "format") {
        let format = object(format, "text.format")?;
        let kind = match given(format, "type") {
            None => "text",
            Some(t) => one_of(
                t,
                "text.format.type",
                "text format",
                &["text", "json_object", "json_schema"],
            )?,
        };
        if kind == "json_schema" {
            match given(format, "name") {
                Some(name) => {
                    string(name, "text.format.name")?;
                }
                None => {
                    return Err(CoreError::invalid(
                        "text.format.name",
                        "is required for json_schema",
                    ))
                }
            }
            match given(format, "schema") {
                Some(schema) => {
                    object(schema, "text.format.schema")?;
                }
                None => {
                    return Err(CoreError::invalid(
                        "text.format.schema",
                        "is required for json_schema",
                    ))
                }
            }
            if let Some(d) = given(format, "description") {
                string(d, "text.format.description")?;
            }
            if let Some(s) = given(format, "strict") {
                boolean(s, "text.format.strict")?;
            }
        }
    }
    if let Some(v) = given(obj, "verbosity") {
        one_of(v, "text.verbosity", "verbosity", VERBOSITIES)?;
    }
    Ok(value.clone())
}

fn parse_reasoning(value: &Value) -> Result<Reasoning> {
    let obj = object(value, "reasoning")?;
    let pick = |key: &str, what: &str, allowed: &[&'static str]| {
        given(obj, key)
            .map(|v| one_of(v, &format!("reasoning.{key}"), what, allowed))
            .transpose()
    };
    Ok(Reasoning {
        effort: pick("effort", "reasoning effort", REASONING_EFFORTS)?,
        summary: pick("summary", "reasoning summary", REASONING_SUMMARIES)?,
        generate_summary: pick("generate_summary", "reasoning summary", REASONING_SUMMARIES)?,
    })
}

/// The chat `response_format` for the request's `text` option (`{"type": "text"}` when there is
/// none). This is the validation turn.rs used to hold, moved here unchanged.
pub fn response_format(text: Option<&Value>) -> Result<Value> {
    let format = match text.and_then(|t| t.get("format")) {
        None | Some(Value::Null) => return Ok(json!({"type": "text"})),
        Some(f) => f,
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(json!({"type": "text"})),
        Some("json_object") => Ok(json!({"type": "json_object"})),
        Some("json_schema") => {
            let name = format.get("name").and_then(Value::as_str).ok_or_else(|| {
                CoreError::invalid("text.format.name", "is required for json_schema")
            })?;
            let schema = format
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    CoreError::invalid("text.format.schema", "is required for json_schema")
                })?;
            let mut json_schema = json!({"name": name, "schema": schema});
            for key in ["description", "strict"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    json_schema[key] = v.clone();
                }
            }
            Ok(json!({"type": "json_schema", "json_schema": json_schema}))
        }
        Some(other) => Err(CoreError::invalid(
            "text.format.type",
            format!("unknown text format '{other}' (expected text, json_object or json_schema)"),
        )),
    }
}

impl RequestOptions {
    /// Parse the options of a create request (a JSON object of its fields). `input` and `tools`
    /// are ignored here; absent keys and JSON null mean "not given".
    pub fn parse(request: &Value) -> Result<RequestOptions> {
        let obj = object(request, "request")?;
        let model = match given(obj, "model") {
            Some(m) => string(m, "model")?,
            None => return Err(CoreError::invalid("model", "is required")),
        };
        let opt_string = |key: &str| given(obj, key).map(|v| string(v, key)).transpose();
        let opt_number = |key: &str, lo: f64, hi: f64| {
            given(obj, key)
                .map(|v| number_in(v, key, lo, hi))
                .transpose()
        };
        let opt_positive = |key: &str| {
            given(obj, key)
                .map(|v| positive_integer(v, key))
                .transpose()
        };
        let opt_bool = |key: &str| given(obj, key).map(|v| boolean(v, key)).transpose();
        let opt_enum = |key: &str, what: &str, allowed: &[&'static str]| {
            given(obj, key)
                .map(|v| one_of(v, key, what, allowed))
                .transpose()
        };
        let opt_of_kind = |key: &str, ok: fn(&Value) -> bool, expected: &str| {
            given(obj, key)
                .map(|v| {
                    if ok(v) {
                        Ok(v.clone())
                    } else {
                        Err(CoreError::invalid(
                            key,
                            format!("must be {expected}, got {}", kind_of(v)),
                        ))
                    }
                })
                .transpose()
        };

        let top_logprobs = match given(obj, "top_logprobs") {
            None => None,
            Some(v) => match integer(v, "top_logprobs")? {
                n @ 0..=20 => Some(n as u32),
                n => {
                    return Err(CoreError::invalid(
                        "top_logprobs",
                        format!("must be between 0 and 20, got {n}"),
                    ))
                }
            },
        };
        let max_infer_iters = match opt_positive("max_infer_iters")? {
            None => DEFAULT_MAX_INFER_ITERS,
            Some(n) => u32::try_from(n)
                .map_err(|_| CoreError::invalid("max_infer_iters", "is too large"))?,
        };
        let include = match given(obj, "include") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, v)| string(v, &format!("include[{i}]")))
                .collect::<Result<Vec<_>>>()?,
            Some(other) => {
                return Err(CoreError::invalid(
                    "include",
                    format!("must be a list of strings, got {}", kind_of(other)),
                ))
            }
        };
        let limited = |key: &str| {
            given(obj, key)
                .map(|v| limited_string(v, key, 64))
                .transpose()
        };

        let opts = RequestOptions {
            model,
            instructions: opt_string("instructions")?,
            temperature: opt_number("temperature", 0.0, 2.0)?,
            top_p: opt_number("top_p", 0.0, 1.0)?,
            presence_penalty: opt_number("presence_penalty", -2.0, 2.0)?,
            frequency_penalty: opt_number("frequency_penalty", -2.0, 2.0)?,
            top_logprobs,
            max_output_tokens: opt_positive("max_output_tokens")?,
            max_tool_calls: opt_positive("max_tool_calls")?,
            max_infer_iters,
            tool_choice: match given(obj, "tool_choice") {
                Some(v) => ToolChoice::parse(v)?,
                None => ToolChoice::Auto,
            },
            parallel_tool_calls: opt_bool("parallel_tool_calls")?,
            metadata: match given(obj, "metadata") {
                Some(v) => parse_metadata(v)?,
                None => Map::new(),
            },
            truncation: opt_enum("truncation", "truncation", TRUNCATIONS)?,
            user: opt_string("user")?,
            safety_identifier: limited("safety_identifier")?,
            prompt_cache_key: limited("prompt_cache_key")?,
            service_tier: opt_enum("service_tier", "service tier", SERVICE_TIERS)?,
            store: opt_bool("store")?.unwrap_or(true),
            background: opt_bool("background")?.unwrap_or(false),
            stream: opt_bool("stream")?.unwrap_or(false),
            text: given(obj, "text").map(parse_text).transpose()?,
            reasoning: given(obj, "reasoning").map(parse_reasoning).transpose()?,
            include,
            previous_response_id: opt_string("previous_response_id")?,
            conversation: opt_of_kind(
                "conversation",
                |v| v.is_string() || v.is_object(),
                "a string or an object",
            )?,
            prompt: opt_of_kind("prompt", Value::is_object, "an object")?,
            context_management: opt_of_kind("context_management", Value::is_array, "a list")?,
            client_metadata: opt_of_kind("client_metadata", Value::is_object, "an object")?,
            stream_options: opt_of_kind("stream_options", Value::is_object, "an object")?,
        };
        if opts.conversation.is_some() && opts.previous_response_id.is_some() {
            return Err(CoreError::invalid(
                "conversation",
                "cannot be used together with previous_response_id",
            ));
        }
        if opts.background && !opts.store {
            return Err(CoreError::invalid(
                "background",
                "requires store to be true (a background response must be stored to be retrieved)",
            ));
        }
        Ok(opts)
    }

    /// Whether the model may call several tools at once (OpenAI's default: true).
    pub fn parallel_tool_calls(&self) -> bool {
        self.parallel_tool_calls.unwrap_or(true)
    }

    /// The chat `response_format` for the `text` option (see the free function).
    pub fn response_format(&self) -> Result<Value> {
        response_format(self.text.as_ref())
    }

    /// The `text` option as the response echoes it: `{"format": ...}` (`{"type": "text"}` when
    /// not given, null keys dropped) plus `verbosity` when given.
    pub fn text_echo(&self) -> Value {
        text_echo(self.text.as_ref())
    }

    /// The Chat Completions parameters for inference besides model, messages, tools, stream,
    /// response_format and tool_choice: only the ones the request gave, so the host's defaults stay.
    ///
    /// * `temperature`, `top_p`, `presence_penalty`, `frequency_penalty` as given;
    /// * `max_tokens` from `max_output_tokens` (llama-stack's `openai_chat_completion` takes both
    ///   `max_tokens` and `max_completion_tokens` in 0.2.7 and 0.2.12, but only `max_tokens` reaches
    ///   its own providers' sampling parameters; OpenAI-compatible servers all accept it);
    /// * `parallel_tool_calls` when given and `tools_offered`;
    /// * `user` from `user`, else `safety_identifier`;
    /// * `logprobs: true` when `include` asks for `message.output_text.logprobs` or `top_logprobs`
    ///   is positive, with `top_logprobs` when given (Chat Completions rejects it without logprobs);
    /// * `reasoning_effort` from `reasoning.effort`. NB: llama-stack 0.2.x's
    ///   `openai_chat_completion` has no such parameter: a host must drop keys its inference API
    ///   does not take.
    pub fn chat_params(&self, tools_offered: bool) -> Map<String, Value> {
        let mut params = Map::new();
        let mut put = |k: &str, v: Value| {
            params.insert(k.to_owned(), v);
        };
        for (key, value) in [
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if let Some(v) = value {
                put(key, json!(v));
            }
        }
        if let Some(n) = self.max_output_tokens {
            put("max_tokens", json!(n));
        }
        if let (true, Some(p)) = (tools_offered, self.parallel_tool_calls) {
            put("parallel_tool_calls", Value::Bool(p));
        }
        if let Some(user) = self.user.as_ref().or(self.safety_identifier.as_ref()) {
            put("user", Value::from(user.as_str()));
        }
        let logprobs = self
            .include
            .iter()
            .any(|i| i == "message.output_text.logprobs")
            || self.top_logprobs.is_some_and(|n| n > 0);
        if logprobs {
            put("logprobs", Value::Bool(true));
            if let Some(n) = self.top_logprobs {
                put("top_logprobs", json!(n));
            }
        }
        if let Some(effort) = self.reasoning.as_ref().and_then(|r| r.effort) {
            put("reasoning_effort", Value::from(effort));
        }
        params
    }
}

/// See `RequestOptions::text_echo`; usable on a raw `text` value.
pub fn text_echo(text: Option<&Value>) -> Value {
    let mut out = Map::new();
    let format = match text
        .and_then(|t| t.get("format"))
        .and_then(Value::as_object)
    {
        Some(f) => {
            let mut f: Map<String, Value> = f
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            f.entry("type").or_insert_with(|| Value::from("text"));
            if f.get("type").and_then(Value::as_str) == Some("json_schema") {
                // OpenAI reports these two on every json_schema format, given or not.
                f.entry("description").or_insert(Value::Null);
                f.entry("strict").or_insert(Value::Bool(false));
            }
            Value::Object(f)
        }
        None => json!({"type": "text"}),
    };
    out.insert("format".into(), format);
    if let Some(v) = text
        .and_then(|t| t.get("verbosity"))
        .filter(|v| !v.is_null())
    {
        out.insert("verbosity".into(), v.clone());
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// tool_choice

/// A hosted tool a `tool_choice` can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostedTool {
    /// `type` as the request spelled it (web_search, web_search_preview, ...), echoed back.
    WebSearch(String),
    FileSearch,
}

impl HostedTool {
    fn type_name(&self) -> &str {
        match self {
            HostedTool::WebSearch(spelling) => spelling,
            HostedTool::FileSearch => "file_search",
        }
    }

    fn matches(&self, tool: &Tool) -> bool {
        matches!(
            (self, tool),
            (HostedTool::WebSearch(_), Tool::WebSearch(_))
                | (HostedTool::FileSearch, Tool::FileSearch { .. })
        )
    }

    fn kind(&self) -> &'static str {
        match self {
            HostedTool::WebSearch(_) => "web_search",
            HostedTool::FileSearch => "file_search",
        }
    }
}

/// One entry of an `allowed_tools` choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedTool {
    Function {
        name: String,
    },
    Mcp {
        server_label: String,
        name: Option<String>,
    },
    Hosted(HostedTool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedMode {
    Auto,
    Required,
}

/// The request's `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    None,
    #[default]
    Auto,
    Required,
    Function {
        name: String,
    },
    Hosted(HostedTool),
    Mcp {
        server_label: String,
        name: Option<String>,
    },
    AllowedTools {
        mode: AllowedMode,
        tools: Vec<AllowedTool>,
    },
}

/// Which chat tools to offer and what chat `tool_choice` to send, from `ToolChoice::apply`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSelection {
    /// One flag per chat tool, in the order of `chat_names` flattened: every name of request tool
    /// 0, then every name of tool 1, and so on (the order turn.rs assembles its chat tools in).
    pub offered: Vec<bool>,
    /// The chat `tool_choice` to send; `None` sends none (the server's default, "auto").
    pub chat_tool_choice: Option<Value>,
}

impl ToolSelection {
    pub fn any_offered(&self) -> bool {
        self.offered.iter().any(|o| *o)
    }

    /// Keep the offered ones of a flattened per-name list (the chat tool definitions, say).
    pub fn filter<T>(&self, flattened: impl IntoIterator<Item = T>) -> Vec<T> {
        flattened
            .into_iter()
            .zip(&self.offered)
            .filter_map(|(t, o)| o.then_some(t))
            .collect()
    }
}

const HOSTED_WEB_SEARCH: &[&str] = &[
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
];

fn parse_hosted(kind: &str) -> Option<HostedTool> {
    if HOSTED_WEB_SEARCH.contains(&kind) {
        Some(HostedTool::WebSearch(kind.to_owned()))
    } else if kind == "file_search" {
        Some(HostedTool::FileSearch)
    } else {
        None
    }
}

fn required_string(obj: &Map<String, Value>, key: &str, path: &str) -> Result<String> {
    match given(obj, key) {
        Some(v) => string(v, &format!("{path}.{key}")),
        None => Err(CoreError::invalid(format!("{path}.{key}"), "is required")),
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>> {
    given(obj, key)
        .map(|v| string(v, &format!("{path}.{key}")))
        .transpose()
}

fn parse_allowed_entry(value: &Value, path: &str) -> Result<AllowedTool> {
    let obj = object(value, path)?;
    let kind = required_string(obj, "type", path)?;
    match kind.as_str() {
        "function" => Ok(AllowedTool::Function {
            name: required_string(obj, "name", path)?,
        }),
        "mcp" => Ok(AllowedTool::Mcp {
            server_label: required_string(obj, "server_label", path)?,
            name: optional_string(obj, "name", path)?,
        }),
        other => parse_hosted(other).map(AllowedTool::Hosted).ok_or_else(|| {
            CoreError::invalid(
                format!("{path}.type"),
                format!(
                    "unsupported tool type '{other}' (expected function, mcp, web_search, \
                     web_search_preview or file_search)"
                ),
            )
        }),
    }
}

/// Where an allowed entry or a choice points: the request tools it designates.
fn designates(entry: &AllowedTool, tool: &Tool) -> bool {
    match (entry, tool) {
        (AllowedTool::Function { name }, Tool::Function { name: n, .. }) => name == n,
        (
            AllowedTool::Mcp { server_label, .. },
            Tool::Mcp {
                server_label: l, ..
            },
        ) => server_label == l,
        (AllowedTool::Hosted(h), tool) => h.matches(tool),
        _ => false,
    }
}

/// An MCP tool name the server's `allowed_tools` filter excludes can never be listed.
fn mcp_name_excluded(tools: &[Tool], server_label: &str, name: &str) -> bool {
    let servers: Vec<&Option<Vec<String>>> = tools
        .iter()
        .filter_map(|t| match t {
            Tool::Mcp {
                server_label: l,
                allowed_tools,
                ..
            } if l == server_label => Some(allowed_tools),
            _ => None,
        })
        .collect();
    !servers.is_empty()
        && servers.iter().all(|allowed| {
            allowed
                .as_ref()
                .is_some_and(|a| !a.iter().any(|n| n == name))
        })
}

impl ToolChoice {
    /// Parse the request's `tool_choice` (not null).
    pub fn parse(value: &Value) -> Result<ToolChoice> {
        const PATH: &str = "tool_choice";
        let obj = match value {
            Value::String(s) => {
                return match s.as_str() {
                    "none" => Ok(ToolChoice::None),
                    "auto" => Ok(ToolChoice::Auto),
                    "required" => Ok(ToolChoice::Required),
                    other => Err(CoreError::invalid(
                        PATH,
                        format!("unknown tool choice '{other}' (expected none, auto, required or an object)"),
                    )),
                }
            }
            Value::Object(obj) => obj,
            other => {
                return Err(CoreError::invalid(
                    PATH,
                    format!("must be a string or an object, got {}", kind_of(other)),
                ))
            }
        };
        let kind = required_string(obj, "type", PATH)?;
        match kind.as_str() {
            "function" => Ok(ToolChoice::Function {
                name: required_string(obj, "name", PATH)?,
            }),
            "mcp" => Ok(ToolChoice::Mcp {
                server_label: required_string(obj, "server_label", PATH)?,
                name: optional_string(obj, "name", PATH)?,
            }),
            "allowed_tools" => {
                let mode = match given(obj, "mode") {
                    None => return Err(CoreError::invalid("tool_choice.mode", "is required")),
                    Some(v) => match one_of(v, "tool_choice.mode", "mode", &["auto", "required"])? {
                        "required" => AllowedMode::Required,
                        _ => AllowedMode::Auto,
                    },
                };
                let tools = match given(obj, "tools") {
                    Some(Value::Array(list)) if !list.is_empty() => list
                        .iter()
                        .enumerate()
                        .map(|(i, v)| parse_allowed_entry(v, &format!("tool_choice.tools[{i}]")))
                        .collect::<Result<Vec<_>>>()?,
                    Some(Value::Array(_)) => {
                        return Err(CoreError::invalid(
                            "tool_choice.tools",
                            "must list at least one tool",
                        ))
                    }
                    Some(other) => {
                        return Err(CoreError::invalid(
                            "tool_choice.tools",
                            format!("must be a list, got {}", kind_of(other)),
                        ))
                    }
                    None => return Err(CoreError::invalid("tool_choice.tools", "is required")),
                };
                Ok(ToolChoice::AllowedTools { mode, tools })
            }
            other => parse_hosted(other).map(ToolChoice::Hosted).ok_or_else(|| {
                CoreError::invalid(
                    "tool_choice.type",
                    format!(
                        "unsupported tool choice type '{other}' (expected function, mcp, allowed_tools, \
                         web_search, web_search_preview or file_search)"
                    ),
                )
            }),
        }
    }

    /// The value the response echoes (OpenAI's shape; "auto" when not given).
    pub fn echo(&self) -> Value {
        fn entry(t: &AllowedTool) -> Value {
            match t {
                AllowedTool::Function { name } => json!({"type": "function", "name": name}),
                AllowedTool::Mcp { server_label, name } => mcp_echo(server_label, name.as_deref()),
                AllowedTool::Hosted(h) => json!({"type": h.type_name()}),
            }
        }
        fn mcp_echo(server_label: &str, name: Option<&str>) -> Value {
            let mut v = json!({"type": "mcp", "server_label": server_label});
            if let Some(name) = name {
                v["name"] = Value::from(name);
            }
            v
        }
        match self {
            ToolChoice::None => Value::from("none"),
            ToolChoice::Auto => Value::from("auto"),
            ToolChoice::Required => Value::from("required"),
            ToolChoice::Function { name } => json!({"type": "function", "name": name}),
            ToolChoice::Hosted(h) => json!({"type": h.type_name()}),
            ToolChoice::Mcp { server_label, name } => mcp_echo(server_label, name.as_deref()),
            ToolChoice::AllowedTools { mode, tools } => json!({
                "type": "allowed_tools",
                "mode": match mode { AllowedMode::Auto => "auto", AllowedMode::Required => "required" },
                "tools": tools.iter().map(entry).collect::<Vec<_>>(),
            }),
        }
    }

    /// Every check that needs no I/O: the function, hosted tool or MCP server the choice names is
    /// among the request's tools. The caller runs it right after parsing, before any I/O.
    pub fn check_static(&self, tools: &[Tool]) -> Result<()> {
        match self {
            ToolChoice::None | ToolChoice::Auto => Ok(()),
            ToolChoice::Required => {
                if tools.is_empty() {
                    Err(CoreError::invalid(
                        "tool_choice",
                        "is 'required' but the request has no tools",
                    ))
                } else {
                    Ok(())
                }
            }
            ToolChoice::Function { name } => {
                let entry = AllowedTool::Function { name: name.clone() };
                if tools.iter().any(|t| designates(&entry, t)) {
                    Ok(())
                } else {
                    Err(CoreError::invalid(
                        "tool_choice.name",
                        format!("no function tool named '{name}' in tools"),
                    ))
                }
            }
            ToolChoice::Hosted(h) => {
                if tools.iter().any(|t| h.matches(t)) {
                    Ok(())
                } else {
                    Err(CoreError::invalid(
                        "tool_choice.type",
                        format!("no {} tool in tools", h.kind()),
                    ))
                }
            }
            ToolChoice::Mcp { server_label, name } => {
                check_mcp_static(tools, server_label, name.as_deref(), "tool_choice")
            }
            ToolChoice::AllowedTools { tools: entries, .. } => {
                for (i, entry) in entries.iter().enumerate() {
                    let path = format!("tool_choice.tools[{i}]");
                    match entry {
                        AllowedTool::Mcp { server_label, name } => {
                            check_mcp_static(tools, server_label, name.as_deref(), &path)?
                        }
                        _ if tools.iter().any(|t| designates(entry, t)) => {}
                        AllowedTool::Function { name } => {
                            return Err(CoreError::invalid(
                                path,
                                format!("no function tool named '{name}' in tools"),
                            ))
                        }
                        AllowedTool::Hosted(h) => {
                            return Err(CoreError::invalid(
                                path,
                                format!("no {} tool in tools", h.kind()),
                            ))
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Decide which chat tools to offer and which chat `tool_choice` to send, once every tool's
    /// chat names are known (`chat_names[i]`: the chat functions request tool `i` became; a
    /// function tool: its name; web_search: "web_search"; file_search: "knowledge_search"; an MCP
    /// server: every tool it listed). Runs `check_static` first.
    ///
    /// * none: nothing offered, no chat tool_choice;
    /// * auto: everything offered, none sent; required: everything, "required";
    /// * a function, web_search or file_search: everything offered, that chat function forced;
    /// * mcp: only that server's tools offered; `name` forces that tool, else "required" (OpenAI:
    ///   the model must call one of the server's tools);
    /// * allowed_tools: only the listed tools offered; mode auto sends none, required "required".
    pub fn apply(&self, tools: &[Tool], chat_names: &[Vec<String>]) -> Result<ToolSelection> {
        if tools.len() != chat_names.len() {
            return Err(CoreError::protocol(format!(
                "tool_choice: {} tools but {} chat name lists",
                tools.len(),
                chat_names.len()
            )));
        }
        self.check_static(tools)?;
        let total: usize = chat_names.iter().map(Vec::len).sum();
        // Offer the (tool, name) pairs `keep` accepts.
        let select = |keep: &dyn Fn(&Tool, &str) -> bool| -> Vec<bool> {
            tools
                .iter()
                .zip(chat_names)
                .flat_map(|(t, names)| names.iter().map(move |n| keep(t, n)))
                .collect()
        };
        let forced = |name: &str| json!({"type": "function", "function": {"name": name}});
        let selection = match self {
            ToolChoice::None => ToolSelection {
                offered: vec![false; total],
                chat_tool_choice: None,
            },
            ToolChoice::Auto => ToolSelection {
                offered: vec![true; total],
                chat_tool_choice: None,
            },
            ToolChoice::Required => ToolSelection {
                offered: vec![true; total],
                chat_tool_choice: Some(Value::from("required")),
            },
            ToolChoice::Function { name } => ToolSelection {
                offered: vec![true; total],
                chat_tool_choice: Some(forced(name)),
            },
            ToolChoice::Hosted(h) => {
                let name = tools
                    .iter()
                    .zip(chat_names)
                    .filter(|(t, _)| h.matches(t))
                    .find_map(|(_, names)| names.first())
                    .ok_or_else(|| {
                        CoreError::invalid(
                            "tool_choice.type",
                            format!("the {} tool offers no function to call", h.kind()),
                        )
                    })?;
                ToolSelection {
                    offered: vec![true; total],
                    chat_tool_choice: Some(forced(name)),
                }
            }
            ToolChoice::Mcp { server_label, name } => {
                let entry = AllowedTool::Mcp {
                    server_label: server_label.clone(),
                    name: name.clone(),
                };
                let offered =
                    select(&|t, n| designates(&entry, t) && name.as_ref().is_none_or(|w| w == n));
                if !offered.iter().any(|o| *o) {
                    return Err(match name {
                        Some(name) => CoreError::invalid(
                            "tool_choice.name",
                            format!("MCP server '{server_label}' lists no tool named '{name}'"),
                        ),
                        None => CoreError::invalid(
                            "tool_choice.server_label",
                            format!("MCP server '{server_label}' listed no tools to choose from"),
                        ),
                    });
                }
                // Offer the whole server even when one of its tools is forced.
                let offered_server = select(&|t, _| designates(&entry, t));
                ToolSelection {
                    offered: offered_server,
                    chat_tool_choice: Some(match name {
                        Some(name) => forced(name),
                        None => Value::from("required"),
                    }),
                }
            }
            ToolChoice::AllowedTools {
                mode,
                tools: entries,
            } => {
                let mut offered = vec![false; total];
                for (i, entry) in entries.iter().enumerate() {
                    let hits = select(&|t, n| {
                        designates(entry, t)
                            && match entry {
                                AllowedTool::Mcp {
                                    name: Some(wanted), ..
                                } => wanted == n,
                                _ => true,
                            }
                    });
                    if !hits.iter().any(|h| *h) {
                        let message = match entry {
                            AllowedTool::Mcp {
                                server_label,
                                name: Some(name),
                            } => {
                                format!("MCP server '{server_label}' lists no tool named '{name}'")
                            }
                            AllowedTool::Mcp { server_label, .. } => {
                                format!("MCP server '{server_label}' listed no tools")
                            }
                            AllowedTool::Function { name } => {
                                format!("no function tool named '{name}' in tools")
                            }
                            AllowedTool::Hosted(h) => {
                                format!("the {} tool offers no function to call", h.kind())
                            }
                        };
                        return Err(CoreError::invalid(
                            format!("tool_choice.tools[{i}]"),
                            message,
                        ));
                    }
                    for (o, h) in offered.iter_mut().zip(hits) {
                        *o |= h;
                    }
                }
                ToolSelection {
                    offered,
                    chat_tool_choice: match mode {
                        AllowedMode::Auto => None,
                        AllowedMode::Required => Some(Value::from("required")),
                    },
                }
            }
        };
        if matches!(selection.chat_tool_choice.as_ref(), Some(Value::String(s)) if s == "required")
            && !selection.any_offered()
        {
            return Err(CoreError::invalid(
                "tool_choice",
                "requires a tool call but no tools are available",
            ));
        }
        Ok(selection)
    }
}

fn check_mcp_static(
    tools: &[Tool],
    server_label: &str,
    name: Option<&str>,
    path: &str,
) -> Result<()> {
    let entry = AllowedTool::Mcp {
        server_label: server_label.to_owned(),
        name: None,
    };
    if !tools.iter().any(|t| designates(&entry, t)) {
        return Err(CoreError::invalid(
            format!("{path}.server_label"),
            format!("no mcp tool with server_label '{server_label}' in tools"),
        ));
    }
    if let Some(name) = name {
        if mcp_name_excluded(tools, server_label, name) {
            return Err(CoreError::invalid(
                format!("{path}.name"),
                format!("'{name}' is not in the allowed_tools of MCP server '{server_label}'"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
