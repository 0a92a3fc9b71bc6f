//! Dropping old context when inference says it is too long, as OGX's builtin does
//! (`ogx/providers/inline/responses/builtin/responses/truncation.py`): the inference error is
//! recognised by its body, the oldest *turn* of the chat messages is dropped and the call is made
//! again (`Turn::truncate_and_retry`).
//!
//! A turn starts at a user message and takes every assistant message and tool result after it, up
//! to the next user message. System and developer messages are never dropped. Messages before the
//! first user message (an assistant message, say) form a turn of their own.

use serde_json::Value;

use super::chat::ChatMessage;

/// The error code and message of a failed response whose context could not be made short enough.
pub const EXHAUSTED_CODE: &str = "context_length_exceeded";
pub const EXHAUSTED_MESSAGE: &str =
    "The conversation exceeds the model's context window and could not be reduced further by truncation.";

/// Does an inference error's body (the OpenAI-compatible error JSON a provider SDK keeps, e.g.
/// `{"error": {"message", "type", "code"}}`, or the same fields at the top level) say that the
/// context is too long? The phrases and codes are the builtin's.
pub fn is_context_length_error(body: &Value) -> bool {
    let Value::Object(body) = body else {
        return false;
    };
    let fields = match body.get("error") {
        Some(Value::Object(error)) => error,
        _ => body,
    };
    let text = |key: &str| -> String {
        match fields.get(key) {
            Some(Value::String(s)) => s.to_lowercase(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string().to_lowercase(),
        }
    };
    let message = text("message");
    let code = text("code");
    [
        "context length",
        "maximum context",
        "too many tokens",
        "input length",
    ]
    .iter()
    .any(|phrase| message.contains(phrase))
        || ["context-window-exceeded", "context_length_exceeded"]
            .iter()
            .any(|c| code.contains(c))
        || text("type").contains("input_text")
}

/// The turns of `messages` as lists of indices, oldest first (see the module comment).
pub fn turn_groups(messages: &[ChatMessage]) -> Vec<Vec<usize>> {
    let is_tool = |i: usize| matches!(messages.get(i), Some(ChatMessage::Tool { .. }));
    let mut turns = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        match message {
            ChatMessage::System { .. } | ChatMessage::Developer { .. } => continue,
            // Tool results join the turn of the message right before them (below); one that follows
            // a system message belongs to no turn and stays.
            ChatMessage::Tool { .. } => continue,
            ChatMessage::User { .. } if !current.is_empty() => {
                turns.push(std::mem::take(&mut current));
            }
            _ => {}
        }
        current.push(i);
        let mut j = i + 1;
        while is_tool(j) {
            current.push(j);
            j += 1;
        }
    }
    if !current.is_empty() {
        turns.push(current);
    }
    turns
}

/// Drop the oldest turn. `false` (and `messages` unchanged) when there is none to drop or nothing
/// would be left: the context cannot be made shorter.
pub fn drop_oldest_turn(messages: &mut Vec<ChatMessage>) -> bool {
    let Some(oldest) = turn_groups(messages).into_iter().next() else {
        return false;
    };
    if oldest.len() >= messages.len() {
        return false;
    }
    let mut index = 0;
    messages.retain(|_| {
        let keep = !oldest.contains(&index);
        index += 1;
        keep
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::chat::ChatContent;
    use serde_json::json;

    fn text(s: &str) -> ChatContent {
        ChatContent::Text(s.to_owned())
    }

    fn user(s: &str) -> ChatMessage {
        ChatMessage::User { content: text(s) }
    }

    fn assistant(s: &str) -> ChatMessage {
        ChatMessage::Assistant {
            content: Some(text(s)),
            tool_calls: None,
            reasoning_content: None,
        }
    }

    fn tool(id: &str) -> ChatMessage {
        ChatMessage::Tool {
            content: "out".into(),
            tool_call_id: id.into(),
        }
    }

    fn system(s: &str) -> ChatMessage {
        ChatMessage::System { content: text(s) }
    }

    #[test]
    fn context_length_errors_are_recognised_by_message_code_or_type() {
        let yes = [
            json!({"error": {"message": "This model's maximum context length is 8192 tokens", "type": "invalid_request_error", "code": null}}),
            json!({"error": {"message": "bad", "code": "context_length_exceeded"}}),
            json!({"message": "Input length exceeds the limit"}),
            json!({"error": {"message": "x", "code": "Context-Window-Exceeded"}}),
            json!({"error": {"message": "x", "type": "input_text_too_long"}}),
            json!({"error": {"message": "Too many tokens in the prompt"}}),
        ];
        for body in &yes {
            assert!(is_context_length_error(body), "{body}");
        }
        let no = [
            json!({"error": {"message": "boom", "type": "server_error", "code": 500}}),
            json!({"error": "context length exceeded"}),
            json!("context length"),
            json!(null),
            json!({"detail": "maximum context"}),
        ];
        for body in &no {
            assert!(!is_context_length_error(body), "{body}");
        }
    }

    #[test]
    fn turns_start_at_user_messages_and_keep_their_tool_results() {
        let messages = vec![
            system("sys"),
            assistant("before any user"),
            user("q1"),
            assistant("a1"),
            tool("c1"),
            tool("c2"),
            assistant("a1b"),
            user("q2"),
            ChatMessage::Developer {
                content: text("dev"),
            },
            assistant("a2"),
        ];
        assert_eq!(
            turn_groups(&messages),
            vec![vec![1], vec![2, 3, 4, 5, 6], vec![7, 9]]
        );
        // A tool result right after a system message belongs to no turn.
        assert_eq!(
            turn_groups(&[system("s"), tool("c"), user("q")]),
            vec![vec![2]]
        );
    }

    #[test]
    fn the_oldest_turn_goes_first_and_system_messages_stay() {
        let mut messages = vec![
            system("sys"),
            user("q1"),
            assistant("a1"),
            user("q2"),
            assistant("a2"),
            user("q3"),
        ];
        assert!(drop_oldest_turn(&mut messages));
        assert_eq!(
            messages,
            vec![system("sys"), user("q2"), assistant("a2"), user("q3")]
        );
        assert!(drop_oldest_turn(&mut messages));
        assert!(drop_oldest_turn(&mut messages));
        assert_eq!(messages, vec![system("sys")]);
        // Nothing droppable left.
        assert!(!drop_oldest_turn(&mut messages));
        // Dropping the only turn would leave nothing: not done.
        let mut alone = vec![user("q")];
        assert!(!drop_oldest_turn(&mut alone));
        assert_eq!(alone, vec![user("q")]);
    }
}
