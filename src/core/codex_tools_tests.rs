//! Codex's tool types: `custom` (free-form input), `namespace` and client-executed `tool_search` become chat
//! functions for the upstream and come back as `custom_tool_call`, namespaced `function_call` and
//! `tool_search_call` items; their calls and outputs replay as chat tool calls and tool messages.

use serde_json::{json, Value};

use super::*;

fn full_cfg() -> TurnConfig {
    let mut config = cfg(true);
    config.record_shape = Shape::Full;
    config
}

fn full_output(turn: &Turn) -> Value {
    let response: Value =
        serde_json::from_str(&turn.final_response().unwrap().to_json(Shape::Full)).unwrap();
    response["output"].clone()
}

fn codex_tools() -> Value {
    json!([
        {"type": "custom", "name": "apply_patch", "description": "Apply a patch",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"*** Begin Patch\" /(.|\\n)*/"}},
        {"type": "namespace", "name": "agents", "description": "Sub-agents", "tools": [
            {"type": "function", "name": "spawn", "description": "Spawn one",
             "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}},
            {"type": "custom", "name": "note", "description": "Free text"},
        ]},
        {"type": "tool_search", "execution": "client"},
        {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
    ])
}

#[test]
fn codex_tools_are_offered_as_chat_functions() {
    let mut turn = Turn::new(full_cfg(), &json!("hi"), &codex_tools()).unwrap();
    let mut log = Log::default();
    let (_, chat_tools) = infer(&mut turn, &mut log);
    let chat_tools = chat_tools.unwrap();
    let names: Vec<&str> = chat_tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "apply_patch",
            "agents__spawn",
            "agents__note",
            "tool_search",
            "exec_command"
        ]
    );
    let patch = &chat_tools[0]["function"];
    assert_eq!(patch["parameters"]["required"], json!(["input"]));
    assert_eq!(patch["parameters"]["properties"]["input"]["type"], "string");
    assert!(patch["parameters"]["properties"]["input"]["description"]
        .as_str()
        .unwrap()
        .contains("*** Begin Patch"));
    assert_eq!(
        chat_tools[1]["function"]["parameters"]["properties"]["task"]["type"],
        "string"
    );
    // The response echoes the tools as the request gave them.
    turn.end_inference().unwrap();
    finish(&mut turn, &mut log);
    let response: Value =
        serde_json::from_str(&turn.final_response().unwrap().to_json(Shape::Full)).unwrap();
    assert_eq!(response["tools"][0]["type"], "custom");
    assert_eq!(response["tools"][1]["tools"][0]["name"], "spawn");
    assert_eq!(response["tools"][2]["type"], "tool_search");
}

#[test]
fn custom_namespaced_and_tool_search_calls_come_back_as_their_items() {
    let mut turn = Turn::new(full_cfg(), &json!("patch it"), &codex_tools()).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.tool_call_delta(
        0,
        Some("call_p"),
        Some("apply_patch"),
        Some("{\"input\": \"*** Begin"),
    )
    .unwrap();
    turn.tool_call_delta(0, None, None, Some(" Patch\\nx\"}"))
        .unwrap();
    turn.tool_call_delta(
        1,
        Some("call_s"),
        Some("agents__spawn"),
        Some("{\"task\": \"t\"}"),
    )
    .unwrap();
    turn.tool_call_delta(
        2,
        Some("call_n"),
        Some("agents__note"),
        Some("{\"input\": \"free\"}"),
    )
    .unwrap();
    turn.tool_call_delta(
        3,
        Some("call_q"),
        Some("tool_search"),
        Some("{\"query\": \"git\"}"),
    )
    .unwrap();
    turn.end_inference().unwrap();
    finish(&mut turn, &mut log);
    log.check_invariants();
    let types = log.types();
    let custom_events: Vec<&str> = types
        .iter()
        .copied()
        .filter(|t| t.starts_with("response.custom_tool_call_input"))
        .collect();
    assert_eq!(
        custom_events,
        vec![
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
        ]
    );
    // A custom call's raw JSON arguments never stream as function-call argument deltas.
    let fn_deltas = types
        .iter()
        .filter(|t| **t == "response.function_call_arguments.delta")
        .count();
    assert!(fn_deltas >= 1);
    let output = full_output(&turn);
    assert_eq!(
        output[0],
        json!({"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch",
               "input": "*** Begin Patch\nx", "id": output[0]["id"]})
    );
    assert!(output[0]["id"].as_str().unwrap().starts_with("ctc_"));
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["name"], "spawn");
    assert_eq!(output[1]["namespace"], "agents");
    assert_eq!(output[1]["arguments"], "{\"task\": \"t\"}");
    assert_eq!(output[2]["type"], "custom_tool_call");
    assert_eq!(output[2]["namespace"], "agents");
    assert_eq!(output[2]["name"], "note");
    assert_eq!(output[2]["input"], "free");
    assert_eq!(output[3]["type"], "tool_search_call");
    assert_eq!(output[3]["execution"], "client");
    assert_eq!(output[3]["call_id"], "call_q");
    assert_eq!(output[3]["arguments"], json!({"query": "git"}));
    assert_eq!(output[3]["status"], "completed");
    // The added events carry the same item types.
    let added: Vec<&str> = log
        .events
        .iter()
        .filter(|e| e["type"] == "response.output_item.added")
        .map(|e| e["item"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        added,
        vec![
            "custom_tool_call",
            "function_call",
            "custom_tool_call",
            "tool_search_call"
        ]
    );
}

#[test]
fn codex_items_replay_as_chat_tool_calls() {
    let input = json!([
        {"type": "message", "role": "developer", "content": "be careful"},
        {"type": "message", "role": "user", "content": "go"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
        {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "*** Begin Patch"},
        {"type": "function_call", "call_id": "c2", "name": "spawn", "namespace": "agents", "arguments": "{}"},
        {"type": "tool_search_call", "call_id": "c3", "execution": "client", "arguments": {"query": "git"},
         "status": "completed"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "done"}]},
        {"type": "function_call_output", "call_id": "c2", "output": "ok"},
        {"type": "tool_search_output", "call_id": "c3", "execution": "client", "status": "completed",
         "tools": [{"type": "function", "name": "git_log"}]},
    ]);
    let mut turn = Turn::new(full_cfg(), &input, &codex_tools()).unwrap();
    let mut log = Log::default();
    let (messages, _) = infer(&mut turn, &mut log);
    assert_eq!(
        messages[0],
        json!({"role": "developer", "content": "be careful"})
    );
    let calls = &messages[2]["tool_calls"];
    assert_eq!(calls[0]["function"]["name"], "apply_patch");
    assert_eq!(
        serde_json::from_str::<Value>(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"input": "*** Begin Patch"})
    );
    assert_eq!(calls[1]["function"]["name"], "agents__spawn");
    assert_eq!(calls[2]["function"]["name"], "tool_search");
    assert_eq!(calls[2]["function"]["arguments"], "{\"query\":\"git\"}");
    assert_eq!(
        messages[3],
        json!({"role": "tool", "content": "done", "tool_call_id": "c1"})
    );
    assert_eq!(
        messages[4],
        json!({"role": "tool", "content": "ok", "tool_call_id": "c2"})
    );
    assert_eq!(messages[5]["tool_call_id"], "c3");
    assert!(messages[5]["content"].as_str().unwrap().contains("git_log"));
    assert_eq!(messages.len(), 6);
}

#[test]
fn codex_types_are_refused_in_llama_stack_records_and_bad_ones_name_the_field() {
    let err = Turn::new(
        cfg(true),
        &json!("x"),
        &json!([{"type": "custom", "name": "p"}]),
    )
    .err()
    .unwrap();
    assert!(err.to_string().starts_with("tools[0].type"), "{err}");
    let err = Turn::new(
        cfg(true),
        &json!([{"type": "custom_tool_call_output", "call_id": "c", "output": "o"}]),
        &json!([]),
    )
    .err()
    .unwrap();
    assert!(err.to_string().starts_with("input[0].type"), "{err}");
    let err = items::parse_tools(
        &json!([{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}]),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("tools[0].tools[0].type"),
        "{err}"
    );
    let err =
        items::parse_tools(&json!([{"type": "tool_search", "execution": "server"}])).unwrap_err();
    assert!(err.to_string().starts_with("tools[0].execution"), "{err}");
    let err =
        items::parse_tools(&json!([{"type": "custom", "name": "p", "format": "x"}])).unwrap_err();
    assert!(err.to_string().starts_with("tools[0].format"), "{err}");
    let err = items::parse_input(&json!([{"type": "custom_tool_call", "name": "p"}])).unwrap_err();
    assert_eq!(err.to_string(), "input[0].call_id: is required");
}

#[test]
fn developer_messages_go_as_system_when_the_upstream_wants_it() {
    let input = json!([
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
        {"type": "message", "role": "user", "content": "go"},
    ]);
    let mut config = full_cfg();
    config.developer_as_system = true;
    let mut turn = Turn::new(config, &input, &json!([])).unwrap();
    let mut log = Log::default();
    let (messages, _) = infer(&mut turn, &mut log);
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages[0]["content"][0]["text"], "rules");
    assert_eq!(messages[1]["role"], "user");
    // The stored input keeps the developer role.
    turn.end_inference().unwrap();
    finish(&mut turn, &mut log);
    let mut turn = Turn::new(full_cfg(), &input, &json!([])).unwrap();
    let (messages, _) = infer(&mut turn, &mut Log::default());
    assert_eq!(messages[0]["role"], "developer");
}

#[test]
fn a_namespaced_tool_too_long_for_a_chat_name_round_trips() {
    let ns = "github_enterprise_server_for_the_platform_team";
    let tools = json!([
        {"type": "namespace", "name": ns, "description": "GitHub", "tools": [
            {"type": "function", "name": "list_pull_requests_for_repository",
             "parameters": {"type": "object", "properties": {"repo": {"type": "string"}}}},
            {"type": "custom", "name": "comment.add", "description": "Free text"},
        ]},
    ]);
    let mut turn = Turn::new(full_cfg(), &json!("list them"), &tools).unwrap();
    let mut log = Log::default();
    let (_, chat_tools) = infer(&mut turn, &mut log);
    let names: Vec<String> = chat_tools
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            chat::chat_tool_name(Some(ns), "list_pull_requests_for_repository"),
            chat::chat_tool_name(Some(ns), "comment.add"),
        ]
    );
    for name in &names {
        assert!(name.len() <= 64, "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{name}"
        );
    }
    // The model calls the short names; the items carry the namespace and name as the request gave them.
    turn.tool_call_delta(
        0,
        Some("call_l"),
        Some(&names[0]),
        Some("{\"repo\": \"r\"}"),
    )
    .unwrap();
    turn.tool_call_delta(
        1,
        Some("call_c"),
        Some(&names[1]),
        Some("{\"input\": \"LGTM\"}"),
    )
    .unwrap();
    turn.end_inference().unwrap();
    finish(&mut turn, &mut log);
    log.check_invariants();
    let output = full_output(&turn);
    assert_eq!(output[0]["type"], "function_call");
    assert_eq!(output[0]["namespace"], ns);
    assert_eq!(output[0]["name"], "list_pull_requests_for_repository");
    assert_eq!(output[0]["arguments"], "{\"repo\": \"r\"}");
    assert_eq!(output[1]["type"], "custom_tool_call");
    assert_eq!(output[1]["namespace"], ns);
    assert_eq!(output[1]["name"], "comment.add");
    assert_eq!(output[1]["input"], "LGTM");
    // Replayed with their outputs, the calls go back to the model under the names it was offered.
    let mut input = vec![json!({"role": "user", "content": "list them"})];
    input.extend(output.as_array().unwrap().iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": "call_l", "output": "[]"}));
    input.push(json!({"type": "custom_tool_call_output", "call_id": "call_c", "output": "ok"}));
    let mut next = Turn::new(full_cfg(), &Value::Array(input), &tools).unwrap();
    let (messages, _) = infer(&mut next, &mut Log::default());
    let called: Vec<&str> = messages[1]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(called, [names[0].as_str(), names[1].as_str()]);
}
