//! Where this context runs calls itself, in the builds with the engine (feature
//! `engine`: the SharedWorker that writes a bus, Node, workerd, `ferry/bullmq`):
//! its own engine, on IndexedDB or in memory, behind the commit queue
//! ([`super::commit`]). The browser's `ferry` build runs them in an engine it loads
//! from this build when it must instead (local_host.rs, [`super::engine_host`]).

use std::future::Future;
use std::rc::Rc;

use js_sys::Date;

use super::bus::StorageChoice;
use super::commit::{self, BusStore, Committer, Place, SharedCommitter};
use crate::core::config::BusConfig;
use crate::core::{Engine, Receipt, Result};
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
    /// Opens the bus's storage. A new bus stores its schema version before anything
    /// else: a bus another ferry stored in a way this one cannot read is refused here.
    pub async fn open(storage: &StorageChoice, config: &BusConfig) -> Result<Local> {
        let store = match storage {
            StorageChoice::Memory => BusStore::Memory(MemoryStore::new()),
            StorageChoice::IndexedDb { name, durability, .. } => BusStore::IndexedDb(IndexedDbStore::open(name, *durability).await?),
        };
        let seed = (js_sys::Math::random() * 2f64.powi(53)) as u64;
        let core = Rc::new(Committer::open(config.clone(), seed, store).await?);
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
