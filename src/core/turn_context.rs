//! What a host adds around a turn, before it starts or while it runs:
//!
//! * `prepend_history`: earlier items of a conversation, sent to the model before the new input
//!   but not stored again as this response's input;
//! * `apply_prompt`: a stored prompt template, rendered with the request's `prompt.variables`
//!   (`{{ name }}` placeholders), as the first system message; image variables become an extra user
//!   message at the end, as OGX's builtin does;
//! * `refuse`: a guardrail flagged the input or the round's output: the round is dropped and the
//!   response completes with one assistant message holding a `refusal` part;
//! * `chat_history`: the chat messages so far without system messages (what a host keeps per
//!   conversation);
//! * `insert_system`: a host's own system message (OGX's skills, its memory context), sent on every
//!   inference call and never stored;
//! * `echo_field`: a host's own response field (OGX's `skills`), in the response, its events and its
//!   record.

use serde_json::Value;

use super::{Phase, Turn};
use crate::core::chat::{self, ChatContent, ChatMessage, ChatPart, ImageUrl};
use crate::core::error::{CoreError, Result};
use crate::core::events::DeltaKind;
use crate::core::items::{self, ContentPart};
use crate::core::round::{Ending, Round};

impl Turn {
    /// A host's system message at `at` in the chat messages (clamped), or, with `None`, after the
    /// leading system and developer messages. Only before the turn starts.
    pub fn insert_system(&mut self, text: &str, at: Option<usize>) -> Result<()> {
        self.expect_phase(Phase::Start, "insert_system")?;
        let at = match at {
            Some(at) => at.min(self.messages.len()),
            None => self
                .messages
                .iter()
                .take_while(|m| {
                    matches!(
                        m,
                        ChatMessage::System { .. } | ChatMessage::Developer { .. }
                    )
                })
                .count(),
        };
        self.messages.insert(
            at,
            ChatMessage::System {
                content: ChatContent::Text(text.to_owned()),
            },
        );
        Ok(())
    }

    /// A host's own field of the response object (replacing one of that name given before). Only
    /// before the turn starts.
    pub fn echo_field(&mut self, name: &str, value: Value) -> Result<()> {
        self.expect_phase(Phase::Start, "echo_field")?;
        let fields = &mut self.response.host_fields;
        match fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value,
            None => fields.push((name.to_owned(), value)),
        }
        Ok(())
    }

    /// Earlier conversation items: their messages go after the leading system message
    /// (instructions) and before the new input's. Only before the turn starts.
    pub fn prepend_history(&mut self, history: &Value) -> Result<()> {
        self.expect_phase(Phase::Start, "prepend_history")?;
        let list = match history {
            Value::Null => return Ok(()),
            Value::Array(list) => list,
            _ => return Err(CoreError::invalid("conversation", "items must be a list")),
        };
        let earlier = list
            .iter()
            .enumerate()
            .map(|(i, v)| items::parse_item(v, &format!("conversation.items[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let lead = usize::from(self.cfg.options.instructions.is_some());
        let tail = self.messages.split_off(lead.min(self.messages.len()));
        self.messages.extend(chat::items_to_messages(&earlier)?);
        self.messages.extend(tail);
        Ok(())
    }

    /// Render the stored prompt `template` with the request's `prompt.variables` (each must be one
    /// of `declared`) and put it first; image variables also go in a user message at the end.
    pub fn apply_prompt(&mut self, template: &str, declared: &[String]) -> Result<()> {
        self.expect_phase(Phase::Start, "apply_prompt")?;
        let prompt = self.cfg.options.prompt.clone().unwrap_or(Value::Null);
        let (text, media) = render_prompt(template, declared, &prompt)?;
        self.messages.insert(
            0,
            ChatMessage::System {
                content: ChatContent::Text(text),
            },
        );
        if !media.is_empty() {
            self.messages.push(ChatMessage::User {
                content: ChatContent::Parts(media),
            });
        }
        Ok(())
    }

    /// A guardrail flagged the input (before the first inference call) or the current round's output:
    /// forget the round (its items and events; the driver drops what it held back), then complete with
    /// one assistant message whose only part is a `refusal` saying `message`.
    pub fn refuse(&mut self, message: &str) -> Result<()> {
        self.expect_phase(Phase::Inferring, "refuse")?;
        self.out.rollback(self.round_mark);
        self.think = None;
        self.incomplete = None;
        self.stop_after_round = false;
        self.queue.clear();
        let mut round = Round::new();
        round.text(&mut self.out, DeltaKind::Refusal, message);
        round.finish(&mut self.out, &self.catalog, Ending::Completed);
        self.round = Round::new();
        self.round_ending = Ending::Completed;
        self.messages.push(ChatMessage::Assistant {
            content: Some(ChatContent::Text(message.to_owned())),
            tool_calls: None,
            reasoning_content: None,
        });
        self.phase = Phase::Finish;
        Ok(())
    }

    /// The chat messages so far (the model's last answer included once the turn is done), without
    /// system messages, as JSON.
    pub fn chat_history(&self) -> Result<String> {
        let kept: Vec<&ChatMessage> = self
            .messages
            .iter()
            .filter(|m| !matches!(m, ChatMessage::System { .. }))
            .collect();
        serde_json::to_string(&kept).map_err(|e| CoreError::protocol(e.to_string()))
    }
}

/// A prompt template rendered with `prompt.variables`: the text, and the image parts to send.
///
/// Without variables the template is used as it is. Each variable must be `declared`; a string or
/// `input_text` replaces `{{ name }}`; an `input_image` (by URL) becomes `[Image: name]` in the
/// text and an image part. Placeholders with no variable stay as they are.
pub fn render_prompt(
    template: &str,
    declared: &[String],
    prompt: &Value,
) -> Result<(String, Vec<ChatPart>)> {
    let id = prompt.get("id").and_then(Value::as_str).unwrap_or("");
    let variables = match prompt.get("variables") {
        None | Some(Value::Null) => return Ok((template.to_owned(), Vec::new())),
        Some(Value::Object(map)) if map.is_empty() => return Ok((template.to_owned(), Vec::new())),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(CoreError::invalid(
                "prompt.variables",
                "must be an object of variable name to value",
            ))
        }
    };
    let mut values: Vec<(&str, String)> = Vec::with_capacity(variables.len());
    let mut media = Vec::new();
    for (name, value) in variables {
        if !declared.iter().any(|d| d == name) {
            return Err(CoreError::invalid(
                "prompt.variables",
                format!("variable '{name}' is not defined in prompt '{id}'"),
            ));
        }
        let path = format!("prompt.variables.{name}");
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Object(obj) if obj.get("type").and_then(Value::as_str) == Some("input_file") => {
                return Err(CoreError::invalid(
                    format!("{path}.type"),
                    "input_file variables are not supported by responses-rs",
                ))
            }
            _ => match items::parse_content_part(value, &path)? {
                ContentPart::InputText { text } => text,
                ContentPart::InputImage {
                    detail,
                    image_url: Some(url),
                } => {
                    media.push(ChatPart::ImageUrl {
                        image_url: ImageUrl { url, detail },
                    });
                    format!("[Image: {name}]")
                }
                ContentPart::InputImage {
                    image_url: None, ..
                } => {
                    return Err(CoreError::invalid(
                        format!("{path}.image_url"),
                        "is required (an image given by file_id only is not supported)",
                    ))
                }
                _ => {
                    return Err(CoreError::invalid(
                        format!("{path}.type"),
                        "must be input_text, input_image or a string",
                    ))
                }
            },
        };
        values.push((name.as_str(), text));
    }
    Ok((substitute(template, &values), media))
}

/// Replace each `{{ name }}` (spaces optional, `name` of word characters) that has a value.
fn substitute(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match placeholder(after) {
            Some((name, used)) => match values.iter().find(|(n, _)| *n == name) {
                Some((_, value)) => {
                    out.push_str(value);
                    rest = &after[used..];
                }
                None => {
                    out.push_str(&rest[start..start + 2 + used]);
                    rest = &after[used..];
                }
            },
            None => {
                // Not a placeholder here: keep one brace and look again from the next one.
                out.push('{');
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// After `{{`: `\s*(\w+)\s*}}` → the name and the bytes the match used.
fn placeholder(s: &str) -> Option<(&str, usize)> {
    let trimmed = s.trim_start();
    let lead = s.len() - trimmed.len();
    let name_len = trimmed
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(trimmed.len());
    if name_len == 0 {
        return None;
    }
    let name = &trimmed[..name_len];
    let after = &trimmed[name_len..];
    let after_trim = after.trim_start();
    if !after_trim.starts_with("}}") {
        return None;
    }
    let used = lead + name_len + (after.len() - after_trim.len()) + 2;
    Some((name, used))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::request::RequestOptions;
    use crate::core::response::Shape;
    use crate::core::turn::{Action, TurnConfig};

    fn turn(request: Value, input: Value) -> Turn {
        let cfg = TurnConfig {
            emit_events: true,
            max_rounds: 10,
            stream_inference: true,
            send_response_format: false,
            extended_tools: true,
            split_think: false,
            file_search_citations: false,
            options: RequestOptions::parse(&request).unwrap(),
            record_shape: Shape::Full,
            developer_as_system: false,
            compaction_trigger: false,
        };
        Turn::new(cfg, &input, &Value::Null).unwrap()
    }

    fn events(turn: &mut Turn) -> Vec<Value> {
        turn.drain_events().map(|e| e.to_json()).collect()
    }

    fn messages_of(action: Action) -> Value {
        match action {
            Action::Infer { messages, .. } => serde_json::from_str(&messages).unwrap(),
            other => panic!("expected Infer, got {other:?}"),
        }
    }

    #[test]
    fn prompt_then_instructions_then_history_then_input_then_media() {
        let request = json!({"model": "m", "instructions": "Be brief.", "prompt": {"id": "p", "variables": {
            "who": "Ada", "pic": {"type": "input_image", "image_url": "http://x/p.png"}}}});
        let mut turn = turn(request, json!("and now?"));
        let history = json!([
            {"type": "message", "role": "user", "content": "earlier"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "reply"}]}
        ]);
        turn.prepend_history(&history).unwrap();
        turn.apply_prompt("Help {{ who }} with {{pic}}", &["who".into(), "pic".into()])
            .unwrap();
        let messages = messages_of(turn.next_action().unwrap());
        assert_eq!(
            messages,
            json!([
                {"role": "system", "content": "Help Ada with [Image: pic]"},
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "earlier"},
                {"role": "assistant", "content": [{"type": "text", "text": "reply"}]},
                {"role": "user", "content": "and now?"},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/p.png", "detail": "auto"}}]}
            ])
        );
        // the history is context, not this response's input; the prompt is echoed
        turn.text_delta("ok").unwrap();
        turn.end_inference().unwrap();
        match turn.next_action().unwrap() {
            Action::Store { input, response } => {
                let input: Value = serde_json::from_str(&input).unwrap();
                assert_eq!(input.as_array().unwrap().len(), 1);
                assert_eq!(input[0]["content"][0]["text"], "and now?");
                let response: Value = serde_json::from_str(&response).unwrap();
                assert_eq!(response["prompt"]["id"], "p");
            }
            other => panic!("expected Store, got {other:?}"),
        }
        turn.stored().unwrap();
        let history: Value = serde_json::from_str(&turn.chat_history().unwrap()).unwrap();
        let roles: Vec<&str> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user", "user", "assistant"]);
    }

    #[test]
    fn refuse_drops_the_round_and_completes_with_a_refusal() {
        let mut turn = turn(json!({"model": "m", "conversation": "conv_1"}), json!("hi"));
        turn.next_action().unwrap();
        let mut seen = events(&mut turn); // created, in_progress
        turn.text_delta("flagged text").unwrap(); // held back by the driver, then dropped
        turn.refuse("Content blocked").unwrap();
        match turn.next_action().unwrap() {
            Action::Store { response, .. } => {
                let response: Value = serde_json::from_str(&response).unwrap();
                assert_eq!(response["status"], "completed");
                assert_eq!(response["conversation"], json!({"id": "conv_1"}));
                assert_eq!(
                    response["output"][0]["content"],
                    json!([{"type": "refusal", "refusal": "Content blocked"}])
                );
                assert_eq!(response["output"].as_array().unwrap().len(), 1);
            }
            other => panic!("expected Store, got {other:?}"),
        }
        turn.stored().unwrap();
        assert_eq!(turn.next_action().unwrap(), Action::Done);
        seen.extend(events(&mut turn));
        let numbers: Vec<u64> = seen
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, (0..seen.len() as u64).collect::<Vec<_>>());
        assert!(!seen.iter().any(|e| e.to_string().contains("flagged text")));
        let kinds: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.refusal.delta",
                "response.refusal.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        // refuse only while a round is open
        assert!(turn.refuse("again").is_err());
    }

    fn declared(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn text_variables_replace_their_placeholders_only() {
        let prompt = json!({"id": "pmpt_1", "variables": {
            "city": {"type": "input_text", "text": "Paris"}, "tone": "dry"}});
        let (text, media) = render_prompt(
            "Talk about {{city}} in a {{ tone }} tone; {{ unknown }} {{{city}} {{ a b }}",
            &declared(&["city", "tone", "unknown"]),
            &prompt,
        )
        .unwrap();
        assert_eq!(
            text,
            "Talk about Paris in a dry tone; {{ unknown }} {Paris {{ a b }}"
        );
        assert!(media.is_empty());
    }

    #[test]
    fn without_variables_the_template_is_kept() {
        let (text, _) =
            render_prompt("Hi {{ x }}", &declared(&["x"]), &json!({"id": "p"})).unwrap();
        assert_eq!(text, "Hi {{ x }}");
    }

    #[test]
    fn an_undeclared_variable_is_refused_naming_the_field() {
        let err = render_prompt(
            "Hi",
            &declared(&["x"]),
            &json!({"id": "pmpt_9", "variables": {"y": "v"}}),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("prompt.variables:"), "{text}");
        assert!(text.contains("'y'") && text.contains("pmpt_9"), "{text}");
    }

    #[test]
    fn an_image_variable_becomes_a_marker_and_a_part() {
        let prompt = json!({"id": "p", "variables": {"photo": {
            "type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}}});
        let (text, media) =
            render_prompt("Look: {{photo}}", &declared(&["photo"]), &prompt).unwrap();
        assert_eq!(text, "Look: [Image: photo]");
        assert_eq!(
            serde_json::to_value(&media).unwrap(),
            json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}])
        );
    }

    #[test]
    fn file_variables_are_refused() {
        let prompt =
            json!({"id": "p", "variables": {"doc": {"type": "input_file", "file_id": "f"}}});
        let err = render_prompt("{{doc}}", &declared(&["doc"]), &prompt).unwrap_err();
        assert!(err.to_string().starts_with("prompt.variables.doc.type:"));
    }
}
