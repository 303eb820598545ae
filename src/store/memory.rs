//! The in-memory backend: records in a hash map. The default outside browsers,
//! and the reference the other backends are tested against.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::Store;
use crate::core::fxhash::FxHashMap;
use crate::core::records::{Key, Record};
use crate::core::{FerryError, Write};

/// Records in memory. Clones share the same records, as two contexts opening the
/// same bus share its storage.
#[derive(Clone, Default)]
pub struct MemoryStore {
    // Unordered: the engine sorts records itself when it opens.
    records: Rc<RefCell<FxHashMap<Key, Record>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record, for checks.
    pub fn snapshot(&self) -> BTreeMap<Key, Record> {
        self.records.borrow().iter().map(|(k, r)| (k.clone(), r.clone())).collect()
    }
}

impl Store for MemoryStore {
    async fn load(&self) -> Result<Vec<(Key, Record)>, FerryError> {
        Ok(self.records.borrow().iter().map(|(k, r)| (k.clone(), r.clone())).collect())
    }

    async fn commit(&self, writes: &[Write]) -> Result<(), FerryError> {
        let mut records = self.records.borrow_mut();
        for (key, record) in writes {
            match record {
                Some(record) => {
                    records.insert(key.clone(), record.clone());
                }
                None => {
                    records.remove(key);
                }
            }
        }
        Ok(())
    }
}
