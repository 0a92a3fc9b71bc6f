use serde_json::{json, Value};

use super::*;
use crate::core::events::DeltaKind;
use crate::core::request::RequestOptions;
use crate::core::response::Shape;
use crate::core::turn::{Action, Turn, TurnConfig};

fn cfg(allowed: bool, request: Value) -> TurnConfig {
    TurnConfig {
        emit_events: true,
        max_rounds: 10,
        stream_inference: true,
        send_response_format: false,
        extended_tools: true,
        split_think: false,
        options: RequestOptions::parse(&request).unwrap(),
        record_shape: Shape::Full,
        file_search_citations: false,
        developer_as_system: false,
        compaction_trigger: allowed,
    }
}

fn history() -> Value {
    json!([
        {"role": "user", "content": "What is the capital of France?"},
        {"type": "message", "role": "assistant", "id": "msg_a",
         "content": [{"type": "output_text", "text": "Paris.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{\"q\":\"pop\"}"},
        {"type": "function_call_output", "call_id": "c1", "output": "2.1 million"},
        {"role": "user", "content": [{"type": "input_text", "text": "And its population?"}]},
        {"type": "compaction_trigger"},
    ])
}

fn tools() -> Value {
    json!([{"type": "function", "name": "lookup", "parameters": {"type": "object"}}])
}

fn field(err: &crate::core::CoreError) -> Option<&str> {
    match err {
        crate::core::CoreError::InvalidInput { field, .. } => Some(field),
        _ => None,
    }
}

fn events(turn: &mut Turn) -> Vec<Value> {
    turn.drain_events().map(|e| e.to_json()).collect()
}

#[test]
fn split_takes_a_final_trigger_off_and_refuses_one_anywhere_else() {
    assert_eq!(split(&json!("hello")).unwrap(), None);
    assert_eq!(
        split(&json!([{"role": "user", "content": "x"}])).unwrap(),
        None
    );
    let rest = split(
        &json!([{"role": "user", "content": "x"}, {"type": "compaction_trigger", "id": "ct_1"}]),
    )
    .unwrap();
    assert_eq!(rest, Some(json!([{"role": "user", "content": "x"}])));
    let err = split(&json!([{"type": "compaction_trigger"}, {"role": "user", "content": "x"}]))
        .unwrap_err();
    assert_eq!(field(&err), Some("input[0].type"));
    assert!(err.to_string().contains("final input item"), "{err}");
}

#[test]
fn a_host_that_does_not_allow_it_refuses_the_trigger_naming_the_item() {
    let err = match Turn::new(cfg(false, json!({"model": "m"})), &history(), &tools()) {
        Ok(_) => panic!("accepted"),
        Err(err) => err,
    };
    assert_eq!(field(&err), Some("input[5].type"));
}

#[test]
fn the_turn_summarises_the_history_into_one_compaction_item() {
    let request = json!({"model": "m", "instructions": "Be brief.", "tool_choice": "required"});
    let mut turn = Turn::new(cfg(true, request), &history(), &tools()).unwrap();
    assert!(turn.compacting());
    let Action::Infer {
        messages, tools, ..
    } = turn.next_action().unwrap()
    else {
        panic!("expected the summarization call")
    };
    assert_eq!(tools, None, "the summarization call offers no tools");
    let messages: Vec<Value> = serde_json::from_str(&messages).unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(messages[1]["content"], "What is the capital of France?");
    assert!(messages
        .iter()
        .any(|m| m["role"] == "tool" && m["content"] == "2.1 million"));
    let last = messages.last().unwrap();
    assert_eq!(
        last,
        &json!({"role": "user", "content": compaction::SUMMARY_PROMPT})
    );

    assert_eq!(
        turn.piece_direct(DeltaKind::OutputText, "Paris, ").unwrap(),
        None
    );
    turn.piece(DeltaKind::ReasoningText, "thinking").unwrap();
    turn.tool_call_delta(0, Some("c9"), Some("lookup"), Some("{}"))
        .unwrap();
    turn.piece(DeltaKind::OutputText, "2.1 million people.")
        .unwrap();
    turn.usage(&json!({"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47}));
    turn.end_inference().unwrap();
    let Action::Store { response, input } = turn.next_action().unwrap() else {
        panic!("expected the store")
    };
    let response: Value = serde_json::from_str(&response).unwrap();
    let summary = format!("{}\nParis, 2.1 million people.", compaction::SUMMARY_PREFIX);
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"].as_array().map(Vec::len), Some(1));
    let item = &response["output"][0];
    assert_eq!(item["type"], "compaction");
    assert_eq!(item["encrypted_content"], summary.as_str());
    assert!(item["id"].as_str().unwrap().starts_with("cmp_"));
    assert_eq!(response["usage"]["input_tokens"], 40);
    // Stored input: the window's user messages (the output's compaction item completes the window).
    let input: Vec<Value> = serde_json::from_str(&input).unwrap();
    let texts: Vec<&str> = input
        .iter()
        .map(|m| m["content"][0]["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        texts,
        ["What is the capital of France?", "And its population?"]
    );
    assert!(input
        .iter()
        .all(|m| m["role"] == "user" && m["id"].as_str().unwrap().starts_with("msg_")));
    turn.stored().unwrap();
    assert_eq!(turn.next_action().unwrap(), Action::Done);

    let events = events(&mut turn);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.compaction.compacting",
            "response.compaction.compacting",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(i));
    }
    let id = item["id"].as_str().unwrap();
    assert_eq!(
        events[2]["item"],
        json!({"type": "compaction", "id": id, "encrypted_content": ""})
    );
    assert_eq!(
        events[3],
        json!({"type": "response.compaction.compacting", "item_id": id, "output_index": 0, "sequence_number": 3})
    );
    assert_eq!(events[5]["item"], *item);
    assert_eq!(events[6]["response"]["output"][0], *item);
}

#[test]
fn a_failure_mid_summary_closes_the_item_once_and_ends_failed() {
    let mut turn = Turn::new(cfg(true, json!({"model": "m"})), &history(), &Value::Null).unwrap();
    turn.next_action().unwrap();
    turn.piece(DeltaKind::OutputText, "Part").unwrap();
    turn.fail("the model server went away");
    turn.fail("again");
    let events = events(&mut turn);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.compaction.compacting",
            "response.output_item.done",
            "response.failed",
        ]
    );
    assert_eq!(events[5]["response"]["status"], "failed");
}
