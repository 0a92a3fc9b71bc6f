//! One Chat Completions stream chunk, read from its JSON bytes straight into a `Turn` (strings are
//! borrowed from the bytes when they hold no escapes), and the whole SSE body fed the same way.
//! The same order as the Python glue: reasoning and refusal, then text, then tool calls, then the
//! finish reason and usage.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::events::DeltaKind;
use super::sse::{SseData, SseReader, UpstreamError};
use super::surrogates::{self, Carry};
use super::turn::Turn;

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(default)]
    index: Option<i64>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

fn core_err(err: super::CoreError) -> UpstreamError {
    UpstreamError(err.to_string())
}

fn non_empty<'s>(s: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Feed one chunk (the JSON of one `data:` payload) to the turn, which must be inferring. `carry`
/// holds the high half of a surrogate pair split across chunks (see `surrogates`); a chunk that does
/// not parse because of an unpaired surrogate escape is repaired and read again.
pub fn feed_chunk(turn: &mut Turn, payload: &[u8], carry: &mut Carry) -> Result<(), UpstreamError> {
    read_chunk(turn, payload, carry, false)
}

/// `repaired`: the payload is a `surrogates::repair`ed one. The one deserialisation call site (the
/// repaired payload comes back through it) keeps it inlined.
fn read_chunk(
    turn: &mut Turn,
    payload: &[u8],
    carry: &mut Carry,
    repaired: bool,
) -> Result<(), UpstreamError> {
    let chunk: Chunk<'_> = match serde_json::from_slice(payload) {
        Ok(chunk) => chunk,
        Err(e) if repaired => return Err(not_a_chunk(e)),
        Err(e) => return read_repaired(turn, payload, carry, e),
    };
    apply_chunk(turn, chunk, carry, repaired)
}

/// A chunk that did not parse: read again with its unpaired surrogate escapes repaired, if it has any.
#[cold]
#[inline(never)]
fn read_repaired(
    turn: &mut Turn,
    payload: &[u8],
    carry: &mut Carry,
    err: serde_json::Error,
) -> Result<(), UpstreamError> {
    match surrogates::repair(payload) {
        Some(fixed) => read_chunk(turn, &fixed, carry, true),
        None => Err(not_a_chunk(err)),
    }
}

fn not_a_chunk(e: serde_json::Error) -> UpstreamError {
    UpstreamError(format!(
        "the model server sent a chunk that is not a chat completion chunk: {e}"
    ))
}

/// A string of a repaired chunk other than model text, with its sentinels made U+FFFD.
fn plain<'s>(s: Option<&'s str>, repaired: bool) -> Option<Cow<'s, str>> {
    s.map(|s| {
        if repaired {
            surrogates::lossy(s)
        } else {
            Cow::Borrowed(s)
        }
    })
}

#[inline(always)]
fn text_piece(
    turn: &mut Turn,
    carry: &mut Carry,
    fix: bool,
    repaired: bool,
    kind: DeltaKind,
    text: &str,
) -> Result<(), UpstreamError> {
    if !fix {
        return turn.piece(kind, text).map_err(core_err);
    }
    fixed_piece(turn, carry, repaired, kind, text)
}

/// A piece of text through the carry (see `surrogates::Carry::text`).
#[cold]
#[inline(never)]
fn fixed_piece(
    turn: &mut Turn,
    carry: &mut Carry,
    repaired: bool,
    kind: DeltaKind,
    text: &str,
) -> Result<(), UpstreamError> {
    let text = carry.text(kind, text, repaired);
    if text.is_empty() {
        return Ok(());
    }
    turn.piece(kind, &text).map_err(core_err)
}

/// A piece of a tool call (its id, name and arguments) through the carry: the arguments as
/// `surrogates::Carry::arguments` makes them, the id and name with each sentinel U+FFFD.
#[cold]
#[inline(never)]
fn fixed_call(
    turn: &mut Turn,
    carry: &mut Carry,
    repaired: bool,
    index: i64,
    (id, name, arguments): (Option<&str>, Option<&str>, Option<&str>),
) -> Result<(), UpstreamError> {
    let arguments = arguments.map(|a| carry.arguments(index, a, repaired));
    turn.tool_call_delta(
        index,
        plain(id, repaired).as_deref(),
        plain(name, repaired).as_deref(),
        arguments.as_deref(),
    )
    .map_err(core_err)
}

/// The inference is over: each half pair the carry still holds ends its text, or its call's
/// arguments, as U+FFFD (before `Turn::end_inference`). The carry is left empty.
pub fn end_carry(turn: &mut Turn, carry: &mut Carry) -> Result<(), super::CoreError> {
    for kind in carry.take_all() {
        turn.piece(kind, "\u{FFFD}")?;
    }
    for index in carry.take_calls() {
        turn.tool_call_delta(index, None, None, Some("\u{FFFD}"))?;
    }
    Ok(())
}

// Inlined into `read_chunk`, as this body was into `feed_chunk` before the surrogate repair.
#[inline(always)]
fn apply_chunk(
    turn: &mut Turn,
    chunk: Chunk<'_>,
    carry: &mut Carry,
    repaired: bool,
) -> Result<(), UpstreamError> {
    if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| error.to_string());
        return Err(UpstreamError(format!("the model server failed: {message}")));
    }
    // Text goes through the carry only after a repair or while it holds half a pair.
    let fix = repaired || !carry.is_empty();
    let choice = chunk.choices.and_then(|c| c.into_iter().next());
    if let Some(choice) = choice {
        if let Some(delta) = &choice.delta {
            let reasoning = non_empty(&delta.reasoning_content).or(non_empty(&delta.reasoning));
            if let Some(r) = reasoning {
                text_piece(turn, carry, fix, repaired, DeltaKind::ReasoningText, r)?;
            }
            if let Some(r) = non_empty(&delta.refusal) {
                text_piece(turn, carry, fix, repaired, DeltaKind::Refusal, r)?;
            }
            if let Some(text) = non_empty(&delta.content) {
                text_piece(turn, carry, fix, repaired, DeltaKind::OutputText, text)?;
            }
            for (position, tc) in delta.tool_calls.iter().flatten().enumerate() {
                let (name, arguments) = match &tc.function {
                    Some(f) => (f.name.as_deref(), f.arguments.as_deref()),
                    None => (None, None),
                };
                let index = tc.index.unwrap_or(position as i64);
                if fix {
                    let strings = (tc.id.as_deref(), name, arguments);
                    fixed_call(turn, carry, repaired, index, strings)?;
                    continue;
                }
                turn.tool_call_delta(index, tc.id.as_deref(), name, arguments)
                    .map_err(core_err)?;
            }
        }
        if let Some(reason) = &choice.finish_reason {
            turn.finish_reason(reason).map_err(core_err)?;
        }
    }
    if let Some(usage) = chunk.usage.filter(|u| !u.is_null()) {
        turn.usage(&usage);
    }
    Ok(())
}

/// Feed a piece of an upstream SSE body (de-chunked) to the turn: every complete chunk in it.
/// `carry` lives as long as the turn's inference (the caller ends each half left in it with
/// `end_carry` when the inference ends).
pub fn feed_sse(
    reader: &mut SseReader,
    turn: &mut Turn,
    carry: &mut Carry,
    bytes: &[u8],
) -> Result<(), UpstreamError> {
    reader.feed(bytes, |data| match data {
        SseData::Data(payload) => feed_chunk(turn, payload, carry),
        SseData::Done => Ok(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::request::RequestOptions;
    use crate::core::response::Shape;
    use crate::core::sse::write_event;
    use crate::core::turn::{Action, TurnConfig};
    use serde_json::json;

    fn turn(tools: Value) -> Turn {
        let options =
            RequestOptions::parse(&json!({"model": "m", "store": true})).expect("options");
        let cfg = TurnConfig {
            emit_events: true,
            max_rounds: 10,
            stream_inference: true,
            send_response_format: true,
            extended_tools: true,
            split_think: false,
            options,
            record_shape: Shape::Full,
            file_search_citations: false,
            developer_as_system: false,
            compaction_trigger: false,
        };
        let mut turn = Turn::new(cfg, &json!("hi"), &tools).expect("turn");
        match turn.next_action().expect("action") {
            Action::Infer { stream, .. } => assert!(stream),
            other => panic!("expected infer, got {other:?}"),
        }
        turn
    }

    fn sse_out(turn: &mut Turn) -> String {
        let mut out = Vec::new();
        while let Some(event) = turn.pop_event() {
            write_event(&event, &mut out);
        }
        String::from_utf8(out).expect("utf-8")
    }

    fn data_lines(sse: &str) -> Vec<Value> {
        sse.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("event JSON"))
            .collect()
    }

    #[test]
    fn text_reasoning_and_usage_from_sse_bytes() {
        let mut t = turn(Value::Null);
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"think\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"lo \\u00e9\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5,\"total_tokens\":8}}\n\n",
            "data: [DONE]\n\n"
        );
        let mut reader = SseReader::new();
        // Fed a byte at a time: the framing holds across reads.
        for b in body.as_bytes().chunks(1) {
            feed_sse(&mut reader, &mut t, &mut Carry::default(), b).expect("feed");
        }
        assert!(reader.done());
        let streamed = sse_out(&mut t);
        let events = data_lines(&streamed);
        let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(types[0], "response.created");
        assert!(types.contains(&"response.reasoning_text.delta"));
        let text: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .filter_map(|e| e["delta"].as_str())
            .collect();
        assert_eq!(text, "Hello é");
        // `event:` names the same type as the data.
        let names: Vec<&str> = streamed
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(names, types);
        t.end_inference().expect("end");
        assert!(matches!(t.next_action(), Ok(Action::Store { .. })));
        t.stored().expect("stored");
        assert_eq!(t.next_action(), Ok(Action::Done));
        let done = data_lines(&sse_out(&mut t));
        let last = done.last().expect("terminal event");
        assert_eq!(last["type"], "response.completed");
        assert_eq!(last["response"]["usage"]["input_tokens"], 3);
        assert_eq!(last["response"]["usage"]["output_tokens"], 5);
        assert_eq!(
            last["response"]["output"][1]["content"][0]["text"],
            "Hello é"
        );
    }

    #[test]
    fn tool_calls_and_length() {
        let tools =
            json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]);
        let mut t = turn(tools);
        let chunks = [
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#,
        ];
        for c in chunks {
            feed_chunk(&mut t, c.as_bytes(), &mut Carry::default()).expect("chunk");
        }
        t.end_inference().expect("end");
        while !matches!(t.next_action(), Ok(Action::Done)) {
            t.stored().expect("stored");
        }
        let response = t.final_response().expect("final").to_value(Shape::Full);
        assert_eq!(response["status"], "incomplete");
        assert_eq!(response["output"][0]["type"], "function_call");
        assert_eq!(response["output"][0]["call_id"], "call_1");
        assert_eq!(response["output"][0]["arguments"], "{\"city\":\"Paris\"}");
    }

    #[test]
    fn snapshots_of_a_response_under_way() {
        let mut t = turn(Value::Null);
        feed_chunk(
            &mut t,
            br#"{"choices":[{"delta":{"content":"part"}}]}"#,
            &mut Carry::default(),
        )
        .expect("chunk");
        let snap: Value =
            serde_json::from_str(&t.snapshot_json("in_progress").expect("known status"))
                .expect("JSON");
        assert_eq!(snap["status"], "in_progress");
        // An open item is as it was added; its content comes when it is closed.
        assert_eq!(snap["output"][0]["status"], "in_progress");
        assert_eq!(snap["output"][0]["content"], json!([]));
        t.end_inference().expect("end");
        let snap: Value =
            serde_json::from_str(&t.snapshot_json("in_progress").expect("known status"))
                .expect("JSON");
        assert_eq!(snap["output"][0]["content"][0]["text"], "part");
        let cancelled: Value =
            serde_json::from_str(&t.snapshot_json("cancelled").expect("known status"))
                .expect("JSON");
        assert_eq!(cancelled["status"], "cancelled");
        assert_eq!(t.snapshot_json("completed"), None);
    }

    #[test]
    fn a_surrogate_pair_split_across_chunks_is_one_character() {
        let mut t = turn(Value::Null);
        let body = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi \\ud83d\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"r\\uDBFF\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"\\ude00!\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\" lone \\udc00 and \\ud83d\\ude01\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        let mut reader = SseReader::new();
        let mut carry = Carry::default();
        for b in body.as_bytes().chunks(7) {
            feed_sse(&mut reader, &mut t, &mut carry, b).expect("feed");
        }
        // The reasoning's high half never met its low half: the caller ends it as U+FFFD.
        assert_eq!(carry.take_all(), vec![DeltaKind::ReasoningText]);
        t.piece(DeltaKind::ReasoningText, "\u{FFFD}")
            .expect("piece");
        let events = data_lines(&sse_out(&mut t));
        let deltas = |kind: &str| -> Vec<String> {
            events
                .iter()
                .filter(|e| e["type"] == kind)
                .filter_map(|e| e["delta"].as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(
            deltas("response.output_text.delta"),
            ["Hi ", "\u{1F600}!", " lone \u{FFFD} and \u{1F601}"]
        );
        assert_eq!(
            deltas("response.reasoning_text.delta").concat(),
            "r\u{FFFD}"
        );
    }

    #[test]
    fn a_lone_surrogate_in_call_arguments_is_replaced() {
        let tools = json!([{"type": "function", "name": "f", "parameters": {"type": "object"}}]);
        let mut t = turn(tools);
        let mut carry = Carry::default();
        let chunk = br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"a\":\"\ud83d\"}"}}]},"finish_reason":"tool_calls"}]}"#;
        feed_chunk(&mut t, chunk, &mut carry).expect("chunk");
        t.end_inference().expect("end");
        let snap: Value =
            serde_json::from_str(&t.snapshot_json("in_progress").expect("status")).expect("JSON");
        assert_eq!(snap["output"][0]["arguments"], "{\"a\":\"\u{FFFD}\"}");
        // A chunk whose fault is not a surrogate is still refused.
        let err = feed_chunk(
            &mut t,
            br#"{"choices":[{"delta":{"content":"\ud83d"}}"#,
            &mut carry,
        )
        .unwrap_err();
        assert!(err.0.contains("not a chat completion chunk"), "{err}");
    }

    #[test]
    fn bad_chunks_and_stream_errors_are_upstream_errors() {
        let mut t = turn(Value::Null);
        let err = feed_chunk(&mut t, b"{not json", &mut Carry::default()).unwrap_err();
        assert!(err.0.contains("not a chat completion chunk"), "{err}");
        let err = feed_chunk(
            &mut t,
            br#"{"error":{"message":"overloaded"}}"#,
            &mut Carry::default(),
        )
        .unwrap_err();
        assert_eq!(err.0, "the model server failed: overloaded");
        let err = feed_chunk(
            &mut t,
            br#"{"choices":[{"delta":{"content":5}}]}"#,
            &mut Carry::default(),
        )
        .unwrap_err();
        assert!(err.0.contains("not a chat completion chunk"), "{err}");
    }
}

#[cfg(test)]
#[path = "chunk_arguments_tests.rs"]
mod arguments_tests;
