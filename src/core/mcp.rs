//! MCP rules that span requests: tool listings reused from the chain's context, and approvals.
//!
//! * Listing reuse (OpenAI's documented rule): when the context (the previous response's input and
//!   output, or the full input a client replays) already holds an `mcp_list_tools` item for a
//!   server_label, the server is not listed again; its tools are offered from that item. A listing
//!   that is empty (a failed one) or lacks a name the request's `allowed_tools` asks for is not
//!   reused: the server is listed.
//! * Approvals (OpenAI's and OGX's `require_approval`): a call the model makes to a tool that needs
//!   approval is not run; the response gets an `mcp_approval_request` item and ends after its round.
//!   The next request carries `mcp_approval_response` items (after the last output item of the
//!   context). Before the first inference, an approved call runs (its `mcp_call` names the request
//!   in `approval_request_id`) and a denied one is not; either way the model is told, as a tool
//!   result of the call, and the loop goes on.

use serde_json::Value;

use super::chat::{ChatMessage, ToolCall, ToolCallFunction};
use super::error::{CoreError, Result};
use super::ids::new_id;
use super::items::{Approval, Item, Role, Tool};
use super::round::CallKind;
use super::tool_calls::Execution;
use super::turn::Turn;

/// An approval answered in this request, waiting to be acted on before the first inference.
#[derive(Debug)]
pub(super) struct Answer {
    pub exec: Execution,
    pub approve: bool,
    pub reason: Option<String>,
}

/// Is this an item a response writes (so an input item after it is new in this request)?
fn is_output_item(item: &Item) -> bool {
    match item {
        Item::Message { role, .. } => *role == Role::Assistant,
        Item::FunctionCallOutput { .. } | Item::McpApprovalResponse { .. } => false,
        _ => true,
    }
}

/// The last non-empty `mcp_list_tools` item of `server_label` in the context whose tools cover
/// `allowed` (every allowed name listed).
pub(super) fn reusable_listing<'a>(
    context: &'a [Item],
    server_label: &str,
    allowed: Option<&[String]>,
) -> Option<&'a [Value]> {
    context.iter().rev().find_map(|item| match item {
        Item::McpListTools {
            server_label: label,
            tools,
            ..
        } if label == server_label && !tools.is_empty() => {
            let listed = |name: &String| {
                tools
                    .iter()
                    .any(|t| t.get("name").and_then(Value::as_str) == Some(name))
            };
            match allowed {
                Some(names) if !names.iter().all(listed) => None,
                _ => Some(tools.as_slice()),
            }
        }
        _ => None,
    })
}

/// `require_approval` other than "never" where the host's records cannot carry approval items.
pub(super) fn refuse_approvals(tools: &[Tool]) -> Result<()> {
    for (i, tool) in tools.iter().enumerate() {
        if let Tool::Mcp {
            require_approval, ..
        } = tool
        {
            if *require_approval != Approval::Never {
                return Err(CoreError::invalid(
                    format!("tools[{i}].require_approval"),
                    "MCP approvals are not supported by this host's contract (its records have no \
                     mcp_approval_request item): use 'never'",
                ));
            }
        }
    }
    Ok(())
}

impl Turn {
    /// The `mcp_approval_response` items new in this request, matched with their requests in the
    /// context and with this request's MCP tools. A response naming no request, or a server the
    /// request does not offer, is refused (ValueError naming the item).
    pub(super) fn collect_answers(&mut self, context: &[Item]) -> Result<()> {
        let tail = context
            .iter()
            .rposition(is_output_item)
            .map_or(0, |last| last + 1);
        for (i, item) in context.iter().enumerate().skip(tail) {
            let Item::McpApprovalResponse {
                approval_request_id,
                approve,
                reason,
                ..
            } = item
            else {
                continue;
            };
            let path = format!("input[{i}].approval_request_id");
            let request = context.iter().find_map(|item| match item {
                Item::McpApprovalRequest {
                    id,
                    arguments,
                    name,
                    server_label,
                } if id == approval_request_id => Some((arguments, name, server_label)),
                _ => None,
            });
            let Some((arguments, name, server_label)) = request else {
                return Err(CoreError::invalid(
                    path,
                    format!("no mcp_approval_request with id '{approval_request_id}' in the input or the previous response"),
                ));
            };
            // Already acted on (a replayed context that holds the call it approved).
            let done = context.iter().any(|item| {
                matches!(item, Item::McpCall { approval_request_id: Some(done), .. } if done == approval_request_id)
            });
            if done
                || self
                    .answers
                    .iter()
                    .any(|a| &a.exec.call_id == approval_request_id)
            {
                continue;
            }
            let Some(server) = self
                .mcp_servers
                .iter()
                .position(|s| &s.label == server_label)
            else {
                return Err(CoreError::invalid(
                    path,
                    format!("the approval request is for MCP server '{server_label}', which is not in tools"),
                ));
            };
            self.answers.push(Answer {
                exec: Execution {
                    kind: CallKind::Mcp(server),
                    call_id: approval_request_id.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                    output_index: None,
                    item_id: String::new(),
                    action: None,
                    approval_request_id: Some(approval_request_id.clone()),
                },
                approve: *approve,
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    /// Act on the answered approvals before the first inference: the model sees each call as its
    /// own tool call; a denied one gets its refusal as the result, an approved one is queued to run.
    pub(super) fn answer_approvals(&mut self) {
        if self.answers.is_empty() {
            return;
        }
        let answers = std::mem::take(&mut self.answers);
        let tool_calls = answers
            .iter()
            .enumerate()
            .map(|(i, a)| ToolCall {
                index: i as u32,
                id: a.exec.call_id.clone(),
                kind: "function",
                function: ToolCallFunction {
                    name: a.exec.name.clone(),
                    arguments: a.exec.arguments.clone(),
                },
            })
            .collect();
        self.messages.push(ChatMessage::Assistant {
            content: None,
            tool_calls: Some(tool_calls),
            reasoning_content: None,
        });
        for answer in answers {
            if answer.approve {
                self.queue.push_back(answer.exec);
            } else {
                let mut content = "Error: the user denied this call; it was not run.".to_owned();
                if let Some(reason) = answer.reason.filter(|r| !r.is_empty()) {
                    content.push_str(&format!(" Reason: {reason}"));
                }
                self.messages.push(ChatMessage::Tool {
                    content,
                    tool_call_id: answer.exec.call_id,
                });
            }
        }
    }

    /// Does the model's call to `name` on MCP server `server` need the user's approval?
    pub(super) fn needs_approval(&self, server: usize, name: &str) -> bool {
        self.mcp_servers
            .get(server)
            .is_some_and(|s| s.approval.needed(name))
    }

    /// The call is not run: an `mcp_approval_request` item says what would run.
    pub(super) fn request_approval(&mut self, server: usize, name: String, arguments: String) {
        let server_label = self
            .mcp_servers
            .get(server)
            .map(|s| s.label.clone())
            .unwrap_or_default();
        let item = Item::McpApprovalRequest {
            id: new_id("mcpr_"),
            arguments,
            name,
            server_label,
        };
        let output_index = self.out.open(item.clone());
        self.out.close(output_index, item);
    }
}

#[cfg(test)]
#[path = "mcp_tests.rs"]
mod tests;
