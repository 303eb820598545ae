//! The in-memory backend: records in a hash map. The default outside browsers,
//! and the reference the other backends are tested against.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use super::{Refresh, Store, Version};
use crate::core::fxhash::FxHashMap;
use crate::core::records::{Key, Record};
use crate::core::{FerryError, Write};

/// Records in memory. Clones share the same records, as two contexts opening the
/// same bus share its storage: each commit of one brings the other's in first.
#[derive(Clone, Default)]
pub struct MemoryStore {
    // Unordered: the engine sorts records itself when it opens.
    records: Rc<RefCell<FxHashMap<Key, Record>>>,
    version: Rc<Cell<Version>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record, for checks.
    pub fn snapshot(&self) -> BTreeMap<Key, Record> {
        self.records().into_iter().collect()
    }

    fn records(&self) -> Vec<(Key, Record)> {
        self.records.borrow().iter().map(|(k, r)| (k.clone(), r.clone())).collect()
    }
}

impl Store for MemoryStore {
    async fn load(&self) -> Result<(Vec<(Key, Record)>, Version), FerryError> {
        Ok((self.records(), self.version.get()))
    }

    /// A context behind gets every record: memory keeps no change log.
    async fn transact(&self, seen: Option<Version>, run: impl FnOnce(Option<Refresh>) -> Result<Vec<Write>, FerryError>) -> Result<Version, FerryError> {
        let version = self.version.get();
        let fresh = (seen != Some(version)).then(|| Refresh::Everything(self.records()));
        let writes = run(fresh)?;
        if writes.is_empty() {
            return Ok(version);
        }
        let mut records = self.records.borrow_mut();
        for (key, record) in writes {
            match record {
                Some(record) => records.insert(key, record),
                None => records.remove(&key),
            };
        }
        self.version.set(version + 1);
        Ok(version + 1)
    }
}
