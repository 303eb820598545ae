//! Rounds the writer holds (`writer: "one"`). A consumer in another context
//! whose round leased nothing waits here rather than at home: every call that may
//! give it work (an append, the acks that end a run, a member leaving, a seek)
//! runs the held rounds again in the same commit, and what they lease leaves
//! with that commit's replies. So a message goes from a producer in one context
//! to a handler in another in one transaction and two crossings of the channel.
//!
//! A round is held until it leases something, its member is gone, or its
//! `wait_ms` passes (the consumer's next heartbeat or ack timeout) or a retry or
//! lease falls due, whichever comes first.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Date;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use super::bus::{is_client, Shared};
use super::consumer::{clear_timeout, set_timeout};
use super::settled::Settled;
use crate::core::config::BusConfig;
use crate::core::{FerryError, Result};
use crate::protocol::{Call, Reply};

/// The rounds held, and a count of the calls that may have given them work.
#[derive(Default)]
pub struct Held {
    rounds: RefCell<Vec<Rc<Round>>>,
    changes: Cell<u64>,
}

struct Round {
    /// The round as the consumer asked for it, its heartbeat done.
    call: Call,
    member: String,
    options: Option<BusConfig>,
    until_ms: f64,
    reply: Settled<Result<Reply>>,
    timer: RefCell<JsValue>,
}

/// How many calls so far may have given held rounds work: a round that leased
/// nothing runs again at once if one came while it ran ([`hold`]).
pub fn changes(shared: &Shared) -> u64 {
    shared.held.changes.get()
}

/// Holds `call`, a round that leased nothing, which was queued when
/// [`changes`] was `changes_before`; resolves to the reply of the run of it that
/// ends the hold.
pub async fn hold(shared: &Shared, options: Option<BusConfig>, mut call: Call, wait_ms: u64, changes_before: u64) -> Result<Reply> {
    let member = match &mut call {
        Call::Round { member, heartbeat, .. } => {
            *heartbeat = false;
            member.clone()
        }
        other => return Err(FerryError::invalid(format!("{} is not a round", other.method()))),
    };
    let now_ms = Date::now();
    let due_ms = shared.local.next_due_ms().map_or(f64::MAX, |t| t as f64);
    let until_ms = (now_ms + wait_ms as f64).min(due_ms.max(now_ms + 1.0));
    let round = Rc::new(Round { call, member, options, until_ms, reply: Settled::default(), timer: RefCell::new(JsValue::UNDEFINED) });
    let weak = Rc::downgrade(shared);
    let timed = round.clone();
    let on_time = Closure::once_into_js(move || {
        let Some(shared) = weak.upgrade() else { return };
        let waiting = {
            let mut rounds = shared.held.rounds.borrow_mut();
            let before = rounds.len();
            rounds.retain(|r| !Rc::ptr_eq(r, &timed));
            rounds.len() != before
        };
        // A round being run again now finishes when that run ends.
        if waiting {
            retry(&shared, timed);
        }
    });
    *round.timer.borrow_mut() = set_timeout(on_time.unchecked_ref(), until_ms - now_ms);
    if changes(shared) == changes_before {
        shared.held.rounds.borrow_mut().push(round.clone());
    } else {
        // Work may have come while the round was committing.
        retry(shared, round.clone());
    }
    round.reply.get().await
}

/// A call that may give held rounds work was queued: each runs again after it,
/// in the same commit.
pub fn changed(shared: &Shared) {
    let held = &shared.held;
    held.changes.set(held.changes.get() + 1);
    let rounds = held.rounds.take();
    for round in rounds {
        retry(shared, round);
    }
}

/// Queues `round` to run again; it ends with what it leases, or goes back to
/// waiting.
fn retry(shared: &Shared, round: Rc<Round>) {
    if is_client(shared) {
        // This context handed the writer's lock over, and the consumer resent its
        // round to the next writer, which answers it: the round is dropped here
        // unanswered. Leasing here too would lease messages that no one handles
        // until their ack timeout.
        clear_timeout(&round.timer.borrow());
        return;
    }
    let changes_before = changes(shared);
    let ran = shared.local.run(round.options.clone(), round.call.clone(), None);
    let shared = shared.clone();
    spawn_local(async move {
        let reply = ran.await;
        let ends = match &reply {
            Ok(Reply::Round { deliveries, members, .. }) => !deliveries.is_empty() || !members.contains(&round.member) || Date::now() >= round.until_ms,
            _ => true,
        };
        if ends {
            clear_timeout(&round.timer.borrow());
            round.reply.set(reply);
        } else if changes(&shared) != changes_before {
            // Work may have come while this run was committing.
            retry(&shared, round);
        } else {
            shared.held.rounds.borrow_mut().push(round);
        }
    });
}
