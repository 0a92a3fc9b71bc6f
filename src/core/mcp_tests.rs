//! MCP approvals and listing reuse, driven by hand the way the Python driver drives a turn.

use serde_json::{json, Value};

use super::super::items::Approval;
use super::super::request::RequestOptions;
use super::super::response::Shape;
use super::super::turn::{Action, Turn, TurnConfig};

fn cfg(shape: Shape) -> TurnConfig {
    TurnConfig {
        emit_events: true,
        max_rounds: 10,
        stream_inference: true,
        send_response_format: false,
        extended_tools: true,
        split_think: false,
        options: RequestOptions::parse(&json!({"model": "m"})).unwrap(),
        record_shape: shape,
        file_search_citations: false,
        developer_as_system: false,
        compaction_trigger: false,
    }
}

fn tools(require_approval: Value) -> Value {
    json!([{"type": "mcp", "server_label": "s", "server_url": "http://s/mcp",
            "require_approval": require_approval}])
}

fn listing() -> Value {
    json!([
        {"name": "echo", "input_schema": {"type": "object", "properties": {"s": {"type": "string"}}}},
        {"name": "rm", "input_schema": {"type": "object"}},
    ])
}

fn event_types(turn: &mut Turn, events: &mut Vec<Value>) {
    events.extend(turn.drain_events().map(|e| e.to_json()));
}

fn expect_infer(turn: &mut Turn) -> (Vec<Value>, Vec<String>) {
    match turn.next_action().unwrap() {
        Action::Infer {
            messages, tools, ..
        } => {
            let tools: Vec<Value> = tools
                .map(|t| serde_json::from_str(&t).unwrap())
                .unwrap_or_default();
            let names = tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
                .collect();
            (serde_json::from_str(&messages).unwrap(), names)
        }
        other => panic!("expected Infer, got {other:?}"),
    }
}

/// Run the turn to its end (storing when asked); the response in OpenAI's shape.
fn finish(turn: &mut Turn) -> Value {
    loop {
        match turn.next_action().unwrap() {
            Action::Store { .. } => turn.stored().unwrap(),
            Action::Done => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    serde_json::from_str(&turn.final_response().unwrap().to_json(Shape::Full)).unwrap()
}

/// First request: the server is listed, the model calls `echo`, which needs approval.
fn first_response() -> (Value, Vec<Value>) {
    let mut turn = Turn::new(cfg(Shape::Full), &json!("say hi"), &tools(json!("always"))).unwrap();
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::ListMcpTools { .. }
    ));
    turn.provide_mcp_tools(&listing()).unwrap();
    let (_, names) = expect_infer(&mut turn);
    assert_eq!(names, ["echo", "rm"]);
    turn.tool_call_delta(0, Some("call_1"), Some("echo"), Some("{\"s\": \"hi\"}"))
        .unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn);
    let mut events = Vec::new();
    event_types(&mut turn, &mut events);
    (response, events)
}

#[test]
fn a_call_that_needs_approval_is_not_run_and_the_response_asks() {
    let (response, events) = first_response();
    assert_eq!(response["status"], "completed");
    let output = response["output"].as_array().unwrap();
    let kinds: Vec<_> = output.iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["mcp_list_tools", "mcp_approval_request"]);
    let request = &output[1];
    assert!(request["id"].as_str().unwrap().starts_with("mcpr_"));
    assert_eq!(request["server_label"], "s");
    assert_eq!(request["name"], "echo");
    assert_eq!(request["arguments"], "{\"s\": \"hi\"}");
    assert_eq!(response["tools"][0]["require_approval"], "always");
    let types: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // The item is announced whole: no argument deltas, no mcp_call, no function call events.
    assert!(!types.iter().any(|t| t.contains("arguments")), "{types:?}");
    assert!(!types.iter().any(|t| t.contains("mcp_call")), "{types:?}");
    let added: Vec<_> = events
        .iter()
        .filter(|e| {
            e["type"] == "response.output_item.added" || e["type"] == "response.output_item.done"
        })
        .filter(|e| e["item"]["type"] == "mcp_approval_request")
        .collect();
    assert_eq!(added.len(), 2);
    assert_eq!(added[1]["item"], *request);
}

/// The chain's context for the second request: the first response's input and output, then `answer`.
fn second_context(first: &Value, answer: Value) -> Value {
    let mut items = vec![json!({"type": "message", "role": "user", "content": "say hi"})];
    items.extend(first["output"].as_array().unwrap().iter().cloned());
    items.push(answer);
    Value::Array(items)
}

#[test]
fn an_approved_call_runs_first_on_the_reused_listing_and_the_loop_goes_on() {
    let (first, _) = first_response();
    let request_id = first["output"][1]["id"].as_str().unwrap().to_owned();
    let input = second_context(
        &first,
        json!({"type": "mcp_approval_response", "approval_request_id": request_id, "approve": true}),
    );
    let mut turn = Turn::new(cfg(Shape::Full), &input, &tools(json!("always"))).unwrap();
    // No listing: the chain's mcp_list_tools item is reused. The approved call runs at once.
    match turn.next_action().unwrap() {
        Action::InvokeMcp {
            name, arguments, ..
        } => {
            assert_eq!(name, "echo");
            assert_eq!(arguments, json!({"s": "hi"}));
        }
        other => panic!("expected InvokeMcp, got {other:?}"),
    }
    turn.tool_result(&json!({"content": [{"type": "text", "text": "hi"}]}))
        .unwrap();
    let (messages, names) = expect_infer(&mut turn);
    assert_eq!(names, ["echo", "rm"]);
    let n = messages.len();
    assert_eq!(messages[n - 2]["role"], "assistant");
    assert_eq!(messages[n - 2]["tool_calls"][0]["id"], request_id.as_str());
    assert_eq!(
        messages[n - 1],
        json!({"role": "tool", "content": "hi", "tool_call_id": request_id})
    );
    turn.text_delta("It said hi.").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn);
    let output = response["output"].as_array().unwrap();
    let kinds: Vec<_> = output.iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["mcp_call", "message"]);
    assert_eq!(output[0]["status"], "completed");
    assert_eq!(output[0]["output"], "hi");
    assert_eq!(output[0]["approval_request_id"], request_id.as_str());
}

#[test]
fn a_denied_call_is_not_run_and_the_model_is_told_why() {
    let (first, _) = first_response();
    let request_id = first["output"][1]["id"].as_str().unwrap().to_owned();
    let input = second_context(
        &first,
        json!({"type": "mcp_approval_response", "approval_request_id": request_id, "approve": false,
               "reason": "not today"}),
    );
    let mut turn = Turn::new(cfg(Shape::Full), &input, &tools(json!("always"))).unwrap();
    let (messages, _) = expect_infer(&mut turn);
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "tool");
    assert_eq!(last["tool_call_id"], request_id.as_str());
    let content = last["content"].as_str().unwrap();
    assert!(
        content.contains("denied") && content.contains("not today"),
        "{content}"
    );
    turn.text_delta("OK, I won't.").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn);
    let kinds: Vec<_> = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message"]);
}

#[test]
fn an_answer_already_acted_on_is_not_acted_on_again() {
    let (first, _) = first_response();
    let request_id = first["output"][1]["id"].as_str().unwrap().to_owned();
    let mut input = second_context(
        &first,
        json!({"type": "mcp_approval_response", "approval_request_id": request_id, "approve": true}),
    );
    // The second response's output, then a new user message: a third request.
    let items = input.as_array_mut().unwrap();
    items.push(json!({"type": "message", "role": "assistant", "content": "It said hi."}));
    items.push(json!({"type": "message", "role": "user", "content": "thanks"}));
    let mut turn = Turn::new(cfg(Shape::Full), &input, &tools(json!("always"))).unwrap();
    expect_infer(&mut turn);
}

#[test]
fn an_answer_to_no_request_names_the_field() {
    let input = json!([
        {"type": "message", "role": "user", "content": "x"},
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_nope", "approve": true},
    ]);
    let err = Turn::new(cfg(Shape::Full), &input, &tools(json!("always")))
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("input[1].approval_request_id: "),
        "{err}"
    );
    let bad =
        json!([{"type": "mcp_approval_response", "approval_request_id": "r", "approve": "yes"}]);
    let err = Turn::new(cfg(Shape::Full), &bad, &tools(json!("always")))
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("input[0].approve: "), "{err}");
}

#[test]
fn approval_filters_in_both_spellings() {
    let parse = |v: Value| match super::super::items::parse_tool(
        &json!({"type": "mcp", "server_label": "s", "server_url": "u", "require_approval": v}),
        "tools[0]",
    )
    .unwrap()
    {
        super::super::items::Tool::Mcp {
            require_approval, ..
        } => require_approval,
        _ => unreachable!(),
    };
    let ogx = parse(json!({"always": ["rm"], "never": ["echo"]}));
    let openai =
        parse(json!({"always": {"tool_names": ["rm"]}, "never": {"tool_names": ["echo"]}}));
    assert_eq!(ogx, openai);
    assert!(ogx.needed("rm") && !ogx.needed("echo") && ogx.needed("other"));
    assert_eq!(parse(json!(null)), Approval::Never);
    assert!(parse(json!("always")).needed("echo"));
    let err = super::super::items::parse_tool(
        &json!({"type": "mcp", "server_label": "s", "server_url": "u", "require_approval": "sometimes"}),
        "tools[0]",
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("tools[0].require_approval: "),
        "{err}"
    );
}

#[test]
fn only_the_tools_a_filter_names_ask_for_approval() {
    let mut turn = Turn::new(
        cfg(Shape::Full),
        &json!("x"),
        &tools(json!({"never": ["echo"]})),
    )
    .unwrap();
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::ListMcpTools { .. }
    ));
    turn.provide_mcp_tools(&listing()).unwrap();
    expect_infer(&mut turn);
    turn.tool_call_delta(0, Some("c1"), Some("echo"), Some("{}"))
        .unwrap();
    turn.tool_call_delta(1, Some("c2"), Some("rm"), Some("{}"))
        .unwrap();
    turn.end_inference().unwrap();
    // echo runs; rm waits for approval; the response ends after this round.
    assert!(
        matches!(turn.next_action().unwrap(), Action::InvokeMcp { ref name, .. } if name == "echo")
    );
    turn.tool_result(&json!({"content": "ok"})).unwrap();
    let response = finish(&mut turn);
    let kinds: Vec<_> = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["mcp_list_tools", "mcp_approval_request", "mcp_call"]
    );
}

#[test]
fn llama_stack_records_refuse_approvals() {
    let err = Turn::new(
        cfg(Shape::LlamaStack0212),
        &json!("x"),
        &tools(json!("always")),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().starts_with("tools[0].require_approval: "),
        "{err}"
    );
    assert!(Turn::new(
        cfg(Shape::LlamaStack0212),
        &json!("x"),
        &tools(json!("never"))
    )
    .is_ok());
}

#[test]
fn a_listing_is_reused_only_when_it_covers_the_request() {
    let list_item = |tools: Value| {
        json!([{"type": "message", "role": "user", "content": "x"},
               {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "s", "tools": tools},
               {"type": "message", "role": "user", "content": "y"}])
    };
    let with_allowed = |allowed: Value| json!([{"type": "mcp", "server_label": "s", "server_url": "u", "allowed_tools": allowed}]);
    let listed = |input: &Value, tools: &Value| {
        let mut turn = Turn::new(cfg(Shape::Full), input, tools).unwrap();
        matches!(turn.next_action().unwrap(), Action::ListMcpTools { .. })
    };
    // Reused: no filter, or a filter the listing covers (and the filter applies to what is offered).
    assert!(!listed(&list_item(listing()), &with_allowed(json!(null))));
    let mut turn = Turn::new(
        cfg(Shape::Full),
        &list_item(listing()),
        &with_allowed(json!(["rm"])),
    )
    .unwrap();
    let (_, names) = expect_infer(&mut turn);
    assert_eq!(names, ["rm"]);
    // Listed again: a name the listing lacks, an empty (failed) listing, another server's listing.
    assert!(listed(&list_item(listing()), &with_allowed(json!(["new"]))));
    assert!(listed(&list_item(json!([])), &with_allowed(json!(null))));
    let other = json!([{"type": "mcp", "server_label": "t", "server_url": "u"}]);
    assert!(listed(&list_item(listing()), &other));
}

/// A failed listing in a record of `shape`: (the final response in OpenAI's shape, the stored
/// record, the events).
fn failed_listing(shape: Shape) -> (Value, Value, Vec<Value>) {
    let mut turn = Turn::new(cfg(shape), &json!("x"), &tools(json!("never"))).unwrap();
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::ListMcpTools { .. }
    ));
    turn.tool_failed("ConnectError: refused").unwrap();
    expect_infer(&mut turn);
    turn.text_delta("hi").unwrap();
    turn.end_inference().unwrap();
    let mut stored = Value::Null;
    loop {
        match turn.next_action().unwrap() {
            Action::Store { response, .. } => {
                stored = serde_json::from_str(&response).unwrap();
                turn.stored().unwrap();
            }
            Action::Done => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut events = Vec::new();
    event_types(&mut turn, &mut events);
    let response =
        serde_json::from_str(&turn.final_response().unwrap().to_json(Shape::Full)).unwrap();
    (response, stored, events)
}

#[test]
fn a_failed_listing_carries_its_error_in_openais_shape_only() {
    let (response, stored, events) = failed_listing(Shape::Full);
    let item = &response["output"][0];
    assert_eq!(item["type"], "mcp_list_tools");
    assert_eq!(item["error"], "ConnectError: refused");
    assert_eq!(item["tools"], json!([]));
    assert_eq!(stored["output"][0], *item);
    let done = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(done["item"]["error"], "ConnectError: refused");
    assert!(events
        .iter()
        .any(|e| e["type"] == "response.mcp_list_tools.failed"));
    // llama-stack 0.2.x's item has no `error`: its records keep their shape.
    for shape in [Shape::LlamaStack0212, Shape::LlamaStack027] {
        let (_, stored, _) = failed_listing(shape);
        let item = stored["output"][0].as_object().unwrap();
        assert_eq!(
            item.keys().collect::<Vec<_>>(),
            ["id", "server_label", "tools", "type"]
        );
        assert_eq!(item["tools"], json!([]));
    }
    // A successful listing has no `error`.
    let (first, _) = first_response();
    assert!(first["output"][0].get("error").is_none());
}

#[test]
fn a_replayed_failed_listing_keeps_its_error_and_is_not_reused() {
    let (first, _, _) = failed_listing(Shape::Full);
    let context = json!([first["output"][0].clone(), {"role": "user", "content": "again"}]);
    let mut turn = Turn::new(cfg(Shape::Full), &context, &tools(json!("never"))).unwrap();
    // The failed listing lists nothing: the server is listed again.
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::ListMcpTools { .. }
    ));
    let items = crate::core::items::parse_input(&context).unwrap();
    let replayed: Value = serde_json::from_str(
        &serde_json::to_string(&crate::core::response::FullItem(&items[0])).unwrap(),
    )
    .unwrap();
    assert_eq!(replayed, first["output"][0]);
}

#[test]
fn a_response_failing_during_a_listing_closes_it_with_the_failure() {
    let mut turn = Turn::new(cfg(Shape::Full), &json!("x"), &tools(json!("never"))).unwrap();
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::ListMcpTools { .. }
    ));
    turn.fail("the store is gone");
    let mut events = Vec::new();
    event_types(&mut turn, &mut events);
    let done = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(done["item"]["error"], "the store is gone");
    assert_eq!(events.last().unwrap()["type"], "response.failed");
}
