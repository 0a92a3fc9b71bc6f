//! The `compaction_trigger` input item (openai-python's `CompactionTrigger`: "Compacts the current
//! context. Must be the final input item."), as Codex sends it: an ordinary `POST /v1/responses`
//! whose input ends with `{"type": "compaction_trigger"}` asks for a compaction of everything before
//! it instead of an answer.
//!
//! The turn makes one inference call, without tools: the history's chat messages, then the
//! summarization prompt as a user message (`compaction::SUMMARY_PROMPT`). Its one output item is a
//! `compaction` item: `output_item.added` (empty `encrypted_content`), one
//! `response.compaction.compacting` event for each piece of summary the model streams (they carry no
//! content), and `output_item.done` whose `encrypted_content` is the summary in plain text, in the
//! format `/responses/compact` writes (`compaction::SUMMARY_PREFIX`, a newline, the summary).
//! The stored input is the compacted window's user messages (`compaction::window_user_messages`), so
//! that a continuation's chain (stored input, then the output) is exactly the window `/compact` makes.

use serde_json::Value;

use super::compaction;
use super::error::{CoreError, Result};
use super::events::Marker;
use super::items::Item;
use super::output::Output;

pub const ITEM_TYPE: &str = "compaction_trigger";

fn is_trigger(item: &Value) -> bool {
    item.get("type").and_then(Value::as_str) == Some(ITEM_TYPE)
}

/// The input without its trigger when its last item is one (`None`: no trigger). A trigger anywhere
/// but last is refused naming the item.
pub fn split(input: &Value) -> Result<Option<Value>> {
    let Value::Array(items) = input else {
        return Ok(None);
    };
    let Some(position) = items.iter().position(is_trigger) else {
        return Ok(None);
    };
    if position + 1 != items.len() {
        return Err(CoreError::invalid(
            format!("input[{position}].type"),
            "a compaction_trigger item must be the final input item",
        ));
    }
    Ok(Some(Value::Array(items[..position].to_vec())))
}

/// The compaction item being written while the summary streams in.
#[derive(Debug, Clone)]
pub struct Compacting {
    item_id: String,
    output_index: Option<usize>,
    summary: String,
}

impl Compacting {
    pub fn new() -> Compacting {
        Compacting {
            item_id: compaction::short_id("cmp_"),
            output_index: None,
            summary: String::new(),
        }
    }

    /// The inference call begins: open the compaction item (once; a retried call keeps it).
    pub fn open(&mut self, out: &mut Output) {
        if self.output_index.is_none() {
            self.output_index = Some(out.open(self.item(String::new())));
        }
    }

    /// A piece of the summary: kept, and announced without its content.
    pub fn piece(&mut self, out: &mut Output, text: &str) {
        if text.is_empty() {
            return;
        }
        self.summary.push_str(text);
        if let Some(index) = self.output_index {
            out.marker(Marker::CompactionCompacting, &self.item_id, index);
        }
    }

    /// The call ended (or the turn failed): close the item with the summary so far, once.
    pub fn finish(&mut self, out: &mut Output) {
        if let Some(index) = self.output_index.take() {
            let summary = std::mem::take(&mut self.summary);
            let content = compaction::with_prefix(&summary);
            out.close(index, self.item(content));
        }
    }

    fn item(&self, encrypted_content: String) -> Item {
        Item::Compaction {
            encrypted_content,
            id: Some(self.item_id.clone()),
        }
    }
}

impl Default for Compacting {
    fn default() -> Self {
        Compacting::new()
    }
}

#[cfg(test)]
#[path = "compaction_trigger_tests.rs"]
mod tests;
