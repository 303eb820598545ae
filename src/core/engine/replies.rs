//! Replies the writer of a bus (`writer: "one"`) gave the calls of other
//! contexts that change the bus (sends, redrives, topic creation), stored in the
//! commit that ran each call. A context resends what it has not had answered
//! when a new writer takes over; the new writer answers such a call from here
//! instead of running it again, so a send is stored once however often it is
//! resent.
//!
//! A context's replies are kept while it may still resend them: each call says
//! which of its calls are all answered (`answered_below`), and those replies go;
//! a context that makes no such call for [`REPLIES_STORED_MS`] is forgotten.

use super::Engine;
use crate::core::limits::{REPLIES_STORED_MAX, REPLIES_STORED_MS};
use crate::core::message::Name;
use crate::core::records::{Key, StoredReplies};

impl Engine {
    /// The stored reply to call `id` of `context`, as its bytes.
    pub fn stored_reply(&self, context: &str, id: u64) -> Option<&[u8]> {
        let stored = self.replies_of(context)?;
        let at = stored.replies.binary_search_by_key(&id, |(call, _)| *call).ok()?;
        Some(&stored.replies[at].1)
    }

    /// Stores `reply` to call `id` of `context`, and forgets its replies to calls
    /// below `answered_below`, which the context has all had.
    pub fn store_reply(&mut self, context: &str, id: u64, reply: Vec<u8>, answered_below: u64, now_ms: u64) {
        let name = Name::from(context);
        // The record changes in place: a commit of a thousand sends from one
        // context writes it once, not a thousand growing copies.
        self.touch(&Key::Replies(name.clone()));
        let at = match self.replies.iter().position(|(c, _)| **c == *context) {
            Some(at) => at,
            None => {
                self.replies.push((name, StoredReplies::default()));
                self.replies.len() - 1
            }
        };
        let stored = &mut self.replies[at].1;
        let answered = stored.replies.partition_point(|(call, _)| *call < answered_below);
        stored.replies.drain(..answered);
        match stored.replies.binary_search_by_key(&id, |(call, _)| *call) {
            Ok(at) => stored.replies[at].1 = reply,
            Err(at) => stored.replies.insert(at, (id, reply)),
        }
        let over = stored.replies.len().saturating_sub(REPLIES_STORED_MAX);
        stored.replies.drain(..over);
        stored.expires_ms = now_ms.saturating_add(REPLIES_STORED_MS);
    }

    pub(super) fn replies_of(&self, context: &str) -> Option<&StoredReplies> {
        self.replies.iter().find(|(c, _)| **c == *context).map(|(_, stored)| stored)
    }

    /// Forgets the contexts that stopped calling.
    pub(super) fn expire_replies(&mut self, now_ms: u64) {
        let gone: Vec<Name> = self.replies.iter().filter(|(_, stored)| stored.expires_ms <= now_ms).map(|(context, _)| context.clone()).collect();
        for context in gone {
            self.put(Key::Replies(context), None);
        }
    }
}
