//! Where this context runs calls itself, in the builds with the engine (feature
//! `engine`: the SharedWorker that writes a bus, Node, workerd, `ferry/bullmq`):
//! its own engine, on IndexedDB or in memory, behind the commit queue
//! ([`super::commit`]). The browser's `ferry` build runs them in an engine it loads
//! from this build when it must instead (local_host.rs, [`super::engine_host`]).

use std::future::Future;
use std::rc::Rc;

use js_sys::Date;
use wasm_bindgen_futures::spawn_local;

use super::bus::{call, wake_consumers, Shared, StorageChoice};
use super::commit::{self, BusStore, Committer, Place, SharedCommitter};
use super::held;
use super::writer::Serve;
use crate::core::config::BusConfig;
use crate::core::{Engine, ErrorCode, FerryError, Receipt, Result};
use crate::protocol::wire::{decode_call, encode_reply};
use crate::protocol::{serve_once, Call, CallId, Reply};
use crate::store::indexeddb::IndexedDbStore;
use crate::store::MemoryStore;

fn now_ms() -> u64 {
    Date::now() as u64
}

pub struct Local {
    core: SharedCommitter,
}

impl Local {
    /// Opens the bus's storage, and when `reads_now`, reads it: a new bus stores its
    /// schema version before anything else, and a bus another ferry stored in a way
    /// this one cannot read is refused here. A page whose SharedWorker writes for it
    /// reads nothing yet, as the pages' build does not (local_host.rs): the writer
    /// refuses a bus it cannot read, and should this context run a commit itself one
    /// day, the commit reads what others stored first, as every commit does.
    pub async fn open(storage: &StorageChoice, config: &BusConfig, reads_now: bool) -> Result<Local> {
        let store = match storage {
            StorageChoice::Memory => BusStore::Memory(MemoryStore::new()),
            StorageChoice::IndexedDb { name, durability, .. } => BusStore::IndexedDb(IndexedDbStore::open(name, *durability).await?),
        };
        let seed = (js_sys::Math::random() * 2f64.powi(53)) as u64;
        let core = Rc::new(Committer::open(config.clone(), seed, store, reads_now).await?);
        if !reads_now {
            return Ok(Local { core });
        }
        if let Err(refused) = commit::operate(&core, now_ms, Place::InOrder, |_, _| Ok(())).await {
            core.store().close();
            return Err(refused);
        }
        Ok(Local { core })
    }

    /// Queues `call` at once, with another context's options when it comes from
    /// one, to run within the next commit; resolves once that commit is stored.
    pub fn run(&self, options: Option<BusConfig>, call: Call, caller: Option<CallId>) -> impl Future<Output = Result<Reply>> {
        // A round that waits for work runs last in its commit: an append queued after
        // it (by another context) is then leased in the same commit. Not one that
        // renews the member: a leave queued after it must stay after it.
        let place = match call {
            Call::Round { wait_ms, heartbeat: false, .. } if wait_ms > 0 => Place::Last,
            _ => Place::InOrder,
        };
        commit::operate(&self.core, now_ms, place, move |e, now| {
            let run = |e: &mut Engine| serve_once(e, call, caller.as_ref(), now);
            match options {
                None => run(e),
                Some(options) => e.with_config(options, run),
            }
        })
    }

    /// When the engine has something due next (a retry, a delayed message, a lease
    /// running out), as of this context's last commit.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.core.read(Engine::next_due_ms).ok().flatten()
    }

    /// Whether `member` of `group` still holds the delivery of `receipt`, as of the
    /// last commit.
    pub fn holds(&self, group: &str, member: &str, receipt: &Receipt, now_ms: u64) -> bool {
        self.core.read(|e| e.holds(group, member, receipt, now_ms)).unwrap_or(true)
    }

    /// Whether `member` of `group` owns the partition, as of the last commit.
    pub fn owns(&self, group: &str, member: &str, topic: &str, partition: u32) -> bool {
        self.core.read(|e| e.owned_partitions(group, member, topic).contains(&partition)).unwrap_or(false)
    }

    /// Another context deleting or upgrading the bus's database runs `then`.
    pub fn on_version_change(&self, then: impl FnOnce() + 'static) {
        if let BusStore::IndexedDb(store) = self.core.store() {
            store.on_version_change(then);
        }
    }

    /// Lets go of the database: an open one keeps a Node process alive.
    pub fn close(&self) {
        self.core.store().close();
    }

    #[cfg(feature = "jobs")]
    pub fn on_job_events(&self, hear: commit::JobEvents) {
        self.core.on_job_events(hear);
    }
}

/// Runs `call` here: a call that appends messages wakes the consumers, one that
/// may give work to the rounds held for other contexts runs them again in its
/// commit ([`held`]), and a round with `wait_ms` that leases nothing is held.
pub(super) fn run_here(shared: &Shared, options: Option<BusConfig>, call: Call, caller: Option<CallId>) -> impl Future<Output = Result<Reply>> {
    let appends = matches!(call, Call::Send { .. } | Call::Redrive { .. });
    let changes = !matches!(call, Call::Topics | Call::Stats | Call::Round { .. }) && !call.is_job_call();
    let hold_ms = match &call {
        Call::Round { wait_ms, .. } => *wait_ms,
        _ => 0,
    };
    let round = (hold_ms > 0).then(|| call.round_copy()).flatten();
    let round_group = match &call {
        Call::Round { group, .. } if shared.watcher.is_some() => Some(group.clone()),
        _ => None,
    };
    let changes_before = held::changes(shared);
    let queued = shared.local.run(options.clone(), call, caller);
    if changes {
        held::changed(shared);
    }
    let shared = shared.clone();
    async move {
        let reply = queued.await?;
        if appends {
            wake_consumers(&shared);
        }
        if let (Some(group), Reply::Round { members, .. }) = (round_group, &reply) {
            watch_members(&shared, &group, members);
        }
        match (round, &reply) {
            (Some(round), Reply::Round { deliveries, .. }) if deliveries.is_empty() => held::hold(&shared, options, round, hold_ms, changes_before).await,
            _ => Ok(reply),
        }
    }
}

/// Asks for the Web Locks of the members a round of `group` lists, so that one
/// whose context goes is evicted at once: its partitions move to the others
/// (whose rounds held here run again, [`held`], and those of other contexts are
/// woken), and its messages in flight come back. Here, where the rounds run, one
/// request per member serves the origin; the members of this context are listed
/// too, and granted only once they left.
fn watch_members(shared: &Shared, group: &str, members: &[String]) {
    let Some(watcher) = &shared.watcher else { return };
    let new = watcher.unwatched(group, members);
    if new.is_empty() {
        return;
    }
    let weak = Rc::downgrade(shared);
    let evicting = group.to_string();
    let gone = move |member: String| {
        let Some(shared) = weak.upgrade() else { return };
        let evicted = call(&shared, Call::Leave { group: evicting.clone(), member, evicted: true });
        spawn_local(async move {
            if evicted.await.is_ok() {
                wake_consumers(&shared);
            }
        });
    };
    watcher.watch(group, new, gone);
}

/// Runs a call's bytes with the options they carry (`caller`: the context that
/// made it, when another did): its reply's bytes.
pub(super) async fn serve_bytes(shared: &Shared, bytes: &[u8], caller: Option<CallId>) -> Vec<u8> {
    let reply = match decode_call(bytes) {
        // A job call this build cannot run is answered at once: its caller runs it,
        // and the bus has nothing to commit for it.
        #[cfg(not(feature = "jobs"))]
        Ok((_, Call::Unserved)) => Ok(Reply::Unserved),
        Ok((context, call)) => run_here(shared, Some(context.config), call, caller).await,
        Err(unreadable) => Err(unreadable),
    };
    encode_reply(&reply)
}

/// What the writer runs for the other contexts.
pub(super) fn serve_others(shared: &Shared) -> Serve {
    let weak = Rc::downgrade(shared);
    Rc::new(move |bytes: Vec<u8>, caller: CallId| {
        let shared = weak.upgrade();
        Box::pin(async move {
            match shared {
                Some(shared) => serve_bytes(&shared, &bytes, Some(caller)).await,
                None => encode_reply(&Err(FerryError::new(ErrorCode::Closed, "the writer's bus was closed"))),
            }
        })
    })
}
