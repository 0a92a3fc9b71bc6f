//! A turn whose inference call is refused for a too long context (`truncate_and_retry`), and a turn
//! whose input carries a `compaction` item.

use serde_json::{json, Value};

use super::*;
use crate::core::truncation;

fn cfg(request: Value, max_rounds: u32, shape: Shape) -> TurnConfig {
    TurnConfig {
        emit_events: true,
        max_rounds,
        stream_inference: true,
        send_response_format: false,
        extended_tools: true,
        split_think: false,
        options: RequestOptions::parse(&request).unwrap(),
        record_shape: shape,
        file_search_citations: false,
        developer_as_system: false,
        compaction_trigger: false,
    }
}

fn sent(turn: &mut Turn) -> Vec<(String, String)> {
    match turn.next_action().unwrap() {
        Action::Infer { messages, .. } => {
            let messages: Vec<Value> = serde_json::from_str(&messages).unwrap();
            messages
                .iter()
                .map(|m| {
                    let content = match &m["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(parts) => {
                            parts.iter().filter_map(|p| p["text"].as_str()).collect()
                        }
                        _ => String::new(),
                    };
                    (m["role"].as_str().unwrap_or("").to_owned(), content)
                })
                .collect()
        }
        other => panic!("expected Infer, got {other:?}"),
    }
}

fn history() -> Value {
    json!([
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "q3"},
    ])
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(r, c)| (r.to_string(), c.to_string()))
        .collect()
}

#[test]
fn a_refused_call_is_made_again_without_the_oldest_turn() {
    let request = json!({"model": "m", "instructions": "sys", "truncation": "disabled"});
    let mut turn = Turn::new(cfg(request, 10, Shape::Full), &history(), &Value::Null).unwrap();
    assert_eq!(
        sent(&mut turn),
        pairs(&[
            ("system", "sys"),
            ("user", "q1"),
            ("assistant", "a1"),
            ("user", "q2"),
            ("assistant", "a2"),
            ("user", "q3")
        ])
    );
    assert_eq!(turn.truncate_and_retry(), Ok(true));
    assert_eq!(
        sent(&mut turn),
        pairs(&[
            ("system", "sys"),
            ("user", "q2"),
            ("assistant", "a2"),
            ("user", "q3")
        ])
    );
    turn.text_delta("answer").unwrap();
    turn.end_inference().unwrap();
    let mut stored_input = None;
    loop {
        match turn.next_action().unwrap() {
            Action::Store { input, .. } => {
                stored_input = Some(input);
                turn.stored().unwrap();
            }
            Action::Done => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let response = turn.final_response().unwrap();
    assert_eq!(response.status, "completed");
    // The stored input is still the whole input: only what the model is sent is shortened.
    let stored: Vec<Value> = serde_json::from_str(&stored_input.unwrap()).unwrap();
    assert_eq!(stored.len(), 5);
    // One created, one in_progress, one terminal event: the retry itself emits nothing.
    let types: Vec<Value> = turn
        .drain_events()
        .map(|e| e.to_json()["type"].clone())
        .collect();
    assert_eq!(types.iter().filter(|t| *t == "response.created").count(), 1);
    assert_eq!(types.last(), Some(&json!("response.completed")));
}

#[test]
fn nothing_left_to_drop_fails_with_context_length_exceeded() {
    let mut turn = Turn::new(
        cfg(json!({"model": "m"}), 10, Shape::Full),
        &history(),
        &Value::Null,
    )
    .unwrap();
    sent(&mut turn);
    assert_eq!(turn.truncate_and_retry(), Ok(true));
    assert_eq!(
        sent(&mut turn),
        pairs(&[("user", "q2"), ("assistant", "a2"), ("user", "q3")])
    );
    assert_eq!(turn.truncate_and_retry(), Ok(true));
    assert_eq!(sent(&mut turn), pairs(&[("user", "q3")]));
    // Dropping the last turn would leave nothing to send.
    assert_eq!(turn.truncate_and_retry(), Ok(false));
    assert_eq!(turn.next_action().unwrap(), Action::Done);
    let response = turn.final_response().unwrap();
    assert_eq!(response.status, "failed");
    let error = response.error.as_ref().unwrap();
    assert_eq!(error.code, "context_length_exceeded");
    assert_eq!(error.message, truncation::EXHAUSTED_MESSAGE);
    let last = turn.drain_events().next_back().unwrap().to_json();
    assert_eq!(last["type"], "response.failed");
}

#[test]
fn the_attempts_are_capped_by_max_rounds() {
    let mut turn = Turn::new(
        cfg(json!({"model": "m"}), 2, Shape::Full),
        &history(),
        &Value::Null,
    )
    .unwrap();
    sent(&mut turn);
    assert_eq!(turn.truncate_and_retry(), Ok(true));
    sent(&mut turn);
    // The second refusal is the second call of two: no third.
    assert_eq!(turn.truncate_and_retry(), Ok(false));
    assert_eq!(turn.final_response().unwrap().status, "failed");
}

#[test]
fn a_call_that_already_streamed_output_is_not_retried() {
    let mut turn = Turn::new(
        cfg(json!({"model": "m"}), 10, Shape::Full),
        &history(),
        &Value::Null,
    )
    .unwrap();
    sent(&mut turn);
    turn.text_delta("partial").unwrap();
    assert!(matches!(
        turn.truncate_and_retry(),
        Err(CoreError::Protocol(_))
    ));
    // Outside a call it is a protocol error too.
    let mut turn = Turn::new(
        cfg(json!({"model": "m"}), 10, Shape::Full),
        &history(),
        &Value::Null,
    )
    .unwrap();
    assert!(matches!(
        turn.truncate_and_retry(),
        Err(CoreError::Protocol(_))
    ));
}

#[test]
fn a_compaction_item_in_the_input_reaches_the_model_and_the_record() {
    let input = json!([
        {"role": "user", "content": "q1"},
        {"type": "compaction", "id": "cmp_1", "encrypted_content": "PREFIX\nsummary"},
        {"role": "user", "content": "q2"},
    ]);
    let mut turn = Turn::new(
        cfg(json!({"model": "m"}), 10, Shape::Full),
        &input,
        &Value::Null,
    )
    .unwrap();
    assert_eq!(
        sent(&mut turn),
        pairs(&[
            ("user", "q1"),
            ("assistant", "PREFIX\nsummary"),
            ("user", "q2")
        ])
    );
    turn.text_delta("ok").unwrap();
    turn.end_inference().unwrap();
    match turn.next_action().unwrap() {
        Action::Store { input, .. } => {
            let stored: Value = serde_json::from_str(&input).unwrap();
            assert_eq!(
                stored[1],
                json!({"type": "compaction", "encrypted_content": "PREFIX\nsummary", "id": "cmp_1"})
            );
        }
        other => panic!("expected Store, got {other:?}"),
    }
}

#[test]
fn the_llama_stack_contracts_refuse_compaction_items() {
    let input =
        json!([{"role": "user", "content": "q"}, {"type": "compaction", "encrypted_content": "s"}]);
    for shape in [Shape::LlamaStack027, Shape::LlamaStack0212] {
        let err = Turn::new(cfg(json!({"model": "m"}), 10, shape), &input, &Value::Null)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "input[1].type: item type 'compaction' is not supported by the llama-stack contract"
        );
    }
}
