//! The browser backend: every record in one IndexedDB object store, shared by every
//! tab, worker and service worker of the origin that opens the same bus name.
//!
//! Keys are arrays `[kind, ...components]` ([`Key::to_parts`]); values are the
//! records' bytes ([`Record::encode`]). One commit is one readwrite transaction:
//! its puts and deletes are issued at once and only its `complete` event counts,
//! so an aborted transaction (quota, a crash) stores nothing. Nothing but
//! IndexedDB requests is awaited inside a transaction, which would otherwise
//! commit early.

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use web_sys::{IdbDatabase, IdbFactory, IdbKeyRange, IdbObjectStore, IdbOpenDbRequest, IdbRequest, IdbTransaction, IdbTransactionMode};

use super::js_keys::{key_from_js, key_to_js};
use super::{Refresh, Store, Version};
use crate::core::limits::CHANGE_LOG_COMMITS;
use crate::core::records::{Key, Record};
use crate::core::vec_map::VecMap;
use crate::core::{ErrorCode, FerryError, Write};

/// The object store holding every record.
const RECORDS: &str = "records";
/// The key (outside the records' array keys) of the commit count: how many commits
/// the database has seen, so a context knows when others changed it.
const VERSION_KEY: &str = "version";
/// The first component of change-log keys `[CHANGE_LOG, commit]`, whose values list
/// the keys that commit wrote; no record kind is negative.
const CHANGE_LOG: f64 = -1.0;
/// The IndexedDB database version this layout needs; a newer database was written
/// by a newer ferry.
const DATABASE_VERSION: u32 = 1;

/// `"relaxed"` (the browsers' default) or `"strict"` transaction durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    Relaxed,
    Strict,
}

impl Durability {
    /// Its name in IndexedDB's transaction options, and in `Bus.open`'s.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Relaxed => "relaxed",
            Durability::Strict => "strict",
        }
    }
}

pub struct IndexedDbStore {
    database: IdbDatabase,
    durability: Durability,
}

/// The name of a DOMException (or other error), for `STORAGE` messages.
fn error_name(error: &JsValue) -> String {
    Reflect::get(error, &JsValue::from_str("name")).ok().and_then(|n| n.as_string()).unwrap_or_else(|| "UnknownError".into())
}

fn storage_error(what: &str, error: &JsValue) -> FerryError {
    let name = error_name(error);
    let code = match name.as_str() {
        "QuotaExceededError" => ErrorCode::QuotaExceeded,
        "VersionError" => ErrorCode::IncompatibleStorage,
        _ => ErrorCode::Storage,
    };
    let detail = Reflect::get(error, &JsValue::from_str("message")).ok().and_then(|m| m.as_string()).unwrap_or_default();
    FerryError::new(code, format!("IndexedDB {what} failed: {name} {detail}").trim_end().to_string())
}

/// Resolves with a request's result, or fails with its error.
async fn request(req: &IdbRequest, what: &str) -> Result<JsValue, FerryError> {
    let wait = Promise::new(&mut |resolve: Function, reject: Function| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    });
    JsFuture::from(wait).await.map_err(|_| storage_error(what, &req.error().map(JsValue::from).unwrap_or(JsValue::UNDEFINED)))?;
    req.result().map_err(|e| storage_error(what, &e))
}

/// Resolves once a transaction completes; fails when it aborts.
async fn completion(tx: &IdbTransaction, what: &str) -> Result<(), FerryError> {
    let wait = Promise::new(&mut |resolve: Function, reject: Function| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onerror(Some(&reject));
        tx.set_onabort(Some(&reject));
    });
    JsFuture::from(wait).await.map(|_| ()).map_err(|_| storage_error(what, &tx.error().map(JsValue::from).unwrap_or(JsValue::UNDEFINED)))
}

fn change_key(commit: Version) -> JsValue {
    Array::of2(&JsValue::from_f64(CHANGE_LOG), &JsValue::from_f64(commit as f64)).into()
}

fn is_change_key(key: &JsValue) -> bool {
    Array::is_array(key) && key.unchecked_ref::<Array>().get(0).as_f64() == Some(CHANGE_LOG)
}

impl IndexedDbStore {
    /// Opens (or creates) the database `name` in this context's IndexedDB.
    pub async fn open(name: &str, durability: Durability) -> Result<IndexedDbStore, FerryError> {
        let factory: IdbFactory = Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| FerryError::storage("IndexedDB is not available in this context; open the bus with storage: \"memory\""))?;
        let open: IdbOpenDbRequest = factory.open_with_u32(name, DATABASE_VERSION).map_err(|e| storage_error("open", &e))?;
        let upgrade = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new({
            let open = open.clone();
            move |_event: JsValue| {
                if let Ok(db) = open.result().and_then(|r| r.dyn_into::<IdbDatabase>()) {
                    if !db.object_store_names().contains(RECORDS) {
                        let _ = db.create_object_store(RECORDS);
                    }
                }
            }
        });
        open.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let result = request(&open, "open").await;
        open.set_onupgradeneeded(None);
        let database: IdbDatabase = result?.dyn_into().map_err(|_| FerryError::storage("IndexedDB open returned no database"))?;
        let store = IndexedDbStore { database, durability };
        store.on_version_change(|| {});
        Ok(store)
    }

    /// Another context deleting the database, or upgrading it (a newer ferry),
    /// needs this connection closed: it is, and `then` runs, for what used it
    /// to stop.
    pub fn on_version_change(&self, then: impl FnOnce() + 'static) {
        let database = self.database.clone();
        let on_version_change = wasm_bindgen::closure::Closure::once_into_js(move |_event: JsValue| {
            database.close();
            then();
        });
        self.database.set_onversionchange(Some(on_version_change.unchecked_ref()));
    }

    /// A transaction over the records, with the durability asked for.
    fn transaction(&self, mode: IdbTransactionMode) -> Result<IdbTransaction, FerryError> {
        let options = js_sys::Object::new();
        let _ = Reflect::set(&options, &JsValue::from_str("durability"), &JsValue::from_str(self.durability.as_str()));
        let mode = match mode {
            IdbTransactionMode::Readwrite => "readwrite",
            _ => "readonly",
        };
        // `transaction(names, mode, options)`; web-sys marks the options form unstable.
        let open: Function = Reflect::get(&self.database, &JsValue::from_str("transaction")).map_err(|e| storage_error("transaction", &e))?.unchecked_into();
        open.call3(&self.database, &JsValue::from_str(RECORDS), &JsValue::from_str(mode), &options)
            .map_err(|e| storage_error("transaction", &e))?
            .dyn_into()
            .map_err(|_| FerryError::storage("IndexedDB returned no transaction"))
    }

    pub fn close(&self) {
        self.database.close();
    }
}

/// The version is the database's commit count, kept beside the records.
impl Store for IndexedDbStore {
    async fn load(&self) -> Result<(Vec<(Key, Record)>, Version), FerryError> {
        let tx = self.transaction(IdbTransactionMode::Readonly)?;
        read_all(&tx).await
    }

    /// One readwrite transaction: the count, and what changed since `seen` asked
    /// for in the same round trip; what changed is read only when another context
    /// committed. The writes go with the next count and the list of keys they touch.
    ///
    /// This is what makes one bus safe to share: every context's operations run on
    /// what the database holds at that moment, inside the transaction that stores
    /// their outcome, and IndexedDB serialises readwrite transactions across the
    /// origin.
    async fn transact(&self, seen: Option<Version>, run: impl FnOnce(Option<Refresh>) -> Result<Vec<Write>, FerryError>) -> Result<Version, FerryError> {
        let tx = self.transaction(IdbTransactionMode::Readwrite)?;
        let store = tx.object_store(RECORDS).map_err(|e| storage_error("commit", &e))?;
        let version_request = store.get(&JsValue::from_str(VERSION_KEY)).map_err(|e| storage_error("commit", &e))?;
        let changes_request = match seen {
            Some(seen) => changes_since(&store, seen)?,
            None => None,
        };
        let version = version_from_js(&request(&version_request, "commit").await?);
        let fresh = match seen {
            Some(seen) if seen == version => None,
            _ => Some(read_since(&tx, &store, changes_request, seen, version).await?),
        };
        let writes = run(fresh)?;
        if writes.is_empty() {
            completion(&tx, "commit").await?;
            return Ok(version);
        }
        let changed = Array::new();
        for (key, record) in &writes {
            let js_key = key_to_js(key);
            let issued = match record {
                Some(record) => store.put_with_key(&Uint8Array::from(record.encode().as_slice()), &js_key),
                None => store.delete(&js_key),
            };
            if let Err(error) = issued {
                let _ = tx.abort();
                return Err(storage_error("commit", &error));
            }
            changed.push(&js_key);
        }
        let next = version + 1;
        store.put_with_key(&changed, &change_key(next)).map_err(|e| storage_error("commit", &e))?;
        if let Some(trimmed) = next.checked_sub(CHANGE_LOG_COMMITS) {
            store.delete(&change_key(trimmed)).map_err(|e| storage_error("commit", &e))?;
        }
        store.put_with_key(&JsValue::from_f64(next as f64), &JsValue::from_str(VERSION_KEY)).map_err(|e| storage_error("commit", &e))?;
        completion(&tx, "commit").await?;
        Ok(next)
    }
}

/// The stored commit count (none before the first commit).
fn version_from_js(value: &JsValue) -> Version {
    value.as_f64().map_or(0, |count| count as Version)
}

/// Every record in a transaction's view, and the commit count.
async fn read_all(tx: &IdbTransaction) -> Result<(Vec<(Key, Record)>, Version), FerryError> {
    let store = tx.object_store(RECORDS).map_err(|e| storage_error("load", &e))?;
    let keys = store.get_all_keys().map_err(|e| storage_error("load", &e))?;
    let values = store.get_all().map_err(|e| storage_error("load", &e))?;
    let keys: Array = request(&keys, "load").await?.unchecked_into();
    let values: Array = request(&values, "load").await?.unchecked_into();
    let mut records = Vec::with_capacity(keys.length() as usize);
    let mut version = 0;
    for (key, value) in keys.iter().zip(values.iter()) {
        if key.as_string().as_deref() == Some(VERSION_KEY) {
            version = version_from_js(&value);
            continue;
        }
        if is_change_key(&key) {
            continue;
        }
        let key = key_from_js(&key)?;
        let record = record_from_js(&key, value)?;
        records.push((key, record));
    }
    Ok((records, version))
}

fn record_from_js(key: &Key, value: JsValue) -> Result<Record, FerryError> {
    let bytes: Uint8Array = value.dyn_into().map_err(|_| FerryError::storage("corrupt record in IndexedDB: not bytes"))?;
    Record::decode(key, &bytes.to_vec())
}

/// The change-log entries after commit `seen` (none asked for before the first).
fn changes_since(store: &IdbObjectStore, seen: Version) -> Result<Option<IdbRequest>, FerryError> {
    if seen < 1 {
        return Ok(None);
    }
    let upper: JsValue = Array::of2(&JsValue::from_f64(CHANGE_LOG), &JsValue::from_f64(f64::INFINITY)).into();
    let range = IdbKeyRange::bound(&change_key(seen + 1), &upper).map_err(|e| storage_error("load", &e))?;
    store.get_all_with_key(&range).map(Some).map_err(|e| storage_error("load", &e))
}

/// What changed from commit `seen` to `version`: the keys the change log lists
/// (`changes`, from [`changes_since`]), with their records now; every record when
/// the log no longer reaches back, or `seen` is not known.
async fn read_since(tx: &IdbTransaction, store: &IdbObjectStore, changes: Option<IdbRequest>, seen: Option<Version>, version: Version) -> Result<Refresh, FerryError> {
    let behind = seen.and_then(|seen| version.checked_sub(seen)).unwrap_or(0);
    if let Some(changes) = changes {
        let lists: Array = request(&changes, "load").await?.unchecked_into();
        // Entries past `version` cannot exist; fewer means the log was trimmed.
        if behind >= 1 && u64::from(lists.length()) == behind {
            let mut keys = VecMap::new();
            for list in lists.iter() {
                for key in list.unchecked_into::<Array>().iter() {
                    keys.insert(key_from_js(&key)?, ());
                }
            }
            // Every read is issued before the first is awaited: one round trip.
            let mut reads = Vec::with_capacity(keys.len());
            for (key, ()) in keys {
                let read = store.get(&key_to_js(&key)).map_err(|e| storage_error("load", &e))?;
                reads.push((key, read));
            }
            let mut changes = Vec::with_capacity(reads.len());
            for (key, read) in reads {
                let value = request(&read, "load").await?;
                let record = if value.is_undefined() { None } else { Some(record_from_js(&key, value)?) };
                changes.push((key, record));
            }
            return Ok(Refresh::Changes(changes));
        }
    }
    Ok(Refresh::Everything(read_all(tx).await?.0))
}
