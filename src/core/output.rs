//! The response's output list and the stream of events that announces it.
//!
//! Both the round assembler (items the model streams) and the tool loop (items of server-side tool
//! calls) write through here, so there is one `sequence_number` counter for the whole response and
//! one place where items are appended and replaced. With events off (a request that is not
//! streamed) nothing is built that nobody reads.

use std::collections::VecDeque;
use std::sync::Arc;

use super::events::{Event, EventBody, Marker};
use super::items::Item;

pub struct Output {
    pub items: Vec<Item>,
    events: VecDeque<Event>,
    seq: u64,
    emit: bool,
    response_id: String,
}

impl Output {
    pub fn new(emit: bool, response_id: String) -> Output {
        Output {
            items: Vec::new(),
            events: VecDeque::new(),
            seq: 0,
            emit,
            response_id,
        }
    }

    /// Are events being generated (a streamed request)?
    #[inline]
    pub fn emits(&self) -> bool {
        self.emit
    }

    /// Nothing is queued: a delta may be handed back directly instead of queued.
    #[inline]
    pub fn idle(&self) -> bool {
        self.events.is_empty()
    }

    pub fn emit(&mut self, body: EventBody) {
        if self.emit {
            self.events.push_back(Event {
                sequence_number: self.seq,
                body,
            });
            self.seq += 1;
        }
    }

    /// Take the next sequence number for an event the caller builds itself.
    #[inline]
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        seq
    }

    /// Append an item to the output and announce it; returns its `output_index`.
    pub fn open(&mut self, item: Item) -> usize {
        let output_index = self.items.len();
        if self.emit {
            self.emit(EventBody::OutputItem {
                done: false,
                output_index,
                item: item.clone(),
                response_id: self.response_id.clone(),
            });
        }
        self.items.push(item);
        output_index
    }

    /// Replace an item with its final form and announce that it is done.
    pub fn close(&mut self, output_index: usize, item: Item) {
        if self.emit {
            self.emit(EventBody::OutputItem {
                done: true,
                output_index,
                item: item.clone(),
                response_id: self.response_id.clone(),
            });
        }
        if let Some(slot) = self.items.get_mut(output_index) {
            *slot = item;
        }
    }

    pub fn marker(&mut self, marker: Marker, item_id: &str, output_index: usize) {
        if self.emit {
            self.emit(EventBody::Marker {
                marker,
                item_id: item_id.to_owned(),
                output_index,
            });
        }
    }

    /// Where the output stands: items so far and the next sequence number (see `rollback`).
    pub fn mark(&self) -> (usize, u64) {
        (self.items.len(), self.seq)
    }

    /// Forget everything since `mark`: the items opened after it, their numbers and the events
    /// still queued from then on (the driver held back, and drops, whatever it drained since).
    pub fn rollback(&mut self, mark: (usize, u64)) {
        self.items.truncate(mark.0);
        self.seq = mark.1;
        self.events.retain(|e| e.sequence_number < mark.1);
    }

    pub fn pending(&self) -> usize {
        self.events.len()
    }

    pub fn pop(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn drain(&mut self) -> std::collections::vec_deque::Drain<'_, Event> {
        self.events.drain(..)
    }
}

/// An item id shared between the open item and every delta event that refers to it.
pub type ItemId = Arc<str>;
