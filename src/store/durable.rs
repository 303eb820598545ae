//! The Cloudflare Durable Object backend: every record of the bus in one table of
//! the object's SQLite storage (`ctx.storage.sql`), keyed by the key's JSON text
//! ([`super::js_keys`]), the record's bytes ([`Record::encode`]) as the value.
//!
//! The object's storage API is synchronous and one object runs one call at a time,
//! so a commit needs no queue: it is one `transactionSync`, whose callback rolls
//! every write back when one fails. Only this object writes its storage, so the
//! engine in memory is always what is stored.
//!
//! A small table beside the records holds the object's name (`ferry_object`),
//! which says what part of a bus it serves.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Reflect, Uint8Array, JSON};
use wasm_bindgen::prelude::*;

use super::js_keys::{key_from_js, key_to_js};
use super::{Refresh, Store, Version};
use crate::core::records::{Key, Record};
use crate::core::{ErrorCode, FerryError, Write};

const TABLE: &str = "ferry_records";
const NAME_TABLE: &str = "ferry_object";

/// Typed bindings for the parts of a Durable Object's storage the store uses:
/// `ctx.storage` (`DurableObjectStorage`) and its SQL API (`ctx.storage.sql`).
mod sys {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        pub type DurableObjectStorage;
        /// `undefined` on a key-value (not SQLite-backed) class.
        #[wasm_bindgen(method, getter)]
        pub fn sql(this: &DurableObjectStorage) -> JsValue;
        /// Runs `callback` in a transaction, rolled back when it throws.
        #[wasm_bindgen(method, catch, js_name = transactionSync)]
        pub fn transaction_sync(this: &DurableObjectStorage, callback: &js_sys::Function) -> Result<JsValue, JsValue>;

        pub type SqlStorage;
        #[wasm_bindgen(method, catch, variadic)]
        pub fn exec(this: &SqlStorage, query: &str, bindings: &js_sys::Array) -> Result<SqlStorageCursor, JsValue>;

        pub type SqlStorageCursor;
        #[wasm_bindgen(method, catch, js_name = toArray)]
        pub fn to_array(this: &SqlStorageCursor) -> Result<js_sys::Array, JsValue>;
    }
}

pub struct DurableStore {
    storage: sys::DurableObjectStorage,
    sql: sys::SqlStorage,
}

fn storage_error(what: &str, error: &JsValue) -> FerryError {
    let message = Reflect::get(error, &JsValue::from_str("message")).ok().and_then(|m| m.as_string()).unwrap_or_default();
    // SQLITE_FULL is the object's storage limit: the edge's QUOTA_EXCEEDED.
    let code = if message.contains("SQLITE_FULL") { ErrorCode::QuotaExceeded } else { ErrorCode::Storage };
    FerryError::new(code, format!("Durable Object storage {what} failed: {message}").trim_end().to_string())
}

impl DurableStore {
    /// The store of the object whose `ctx.storage` this is; creates its table.
    pub fn open(storage: JsValue) -> Result<DurableStore, FerryError> {
        let storage: sys::DurableObjectStorage = storage.unchecked_into();
        let sql = storage.sql();
        if !sql.is_object() {
            return Err(FerryError::storage("ctx.storage.sql is missing: the Durable Object class must use SQLite storage (new_sqlite_classes)"));
        }
        let store = DurableStore { storage, sql: sql.unchecked_into() };
        store.exec(&format!("CREATE TABLE IF NOT EXISTS {TABLE} (k TEXT PRIMARY KEY, v BLOB NOT NULL)"), &Array::new(), "open")?;
        store.exec(&format!("CREATE TABLE IF NOT EXISTS {NAME_TABLE} (name TEXT NOT NULL)"), &Array::new(), "open")?;
        Ok(store)
    }

    /// `sql.exec(query, ...bindings)`.
    fn exec(&self, query: &str, bindings: &Array, what: &str) -> Result<sys::SqlStorageCursor, FerryError> {
        self.sql.exec(query, bindings).map_err(|e| storage_error(what, &e))
    }

    /// The rows of `query`.
    fn rows(&self, query: &str, what: &str) -> Result<Array, FerryError> {
        self.exec(query, &Array::new(), what)?.to_array().map_err(|e| storage_error(what, &e))
    }

    /// The name the object was first used under, if it was.
    pub fn name(&self) -> Result<Option<String>, FerryError> {
        let rows = self.rows(&format!("SELECT name FROM {NAME_TABLE}"), "read the object's name")?;
        Ok(Reflect::get(&rows.get(0), &JsValue::from_str("name")).ok().and_then(|n| n.as_string()))
    }

    pub fn set_name(&self, name: &str) -> Result<(), FerryError> {
        self.exec(&format!("INSERT INTO {NAME_TABLE} (name) VALUES (?)"), &Array::of1(&JsValue::from_str(name)), "store the object's name").map(|_| ())
    }

    /// Every stored record.
    fn load_now(&self) -> Result<Vec<(Key, Record)>, FerryError> {
        let rows = self.rows(&format!("SELECT k, v FROM {TABLE}"), "load")?;
        let mut records = Vec::with_capacity(rows.length() as usize);
        for row in rows.iter() {
            let text = Reflect::get(&row, &JsValue::from_str("k")).ok().and_then(|k| k.as_string()).ok_or_else(|| FerryError::storage("corrupt key in storage"))?;
            let key = key_from_js(&JSON::parse(&text).map_err(|_| FerryError::storage("corrupt key in storage"))?)?;
            let value = Reflect::get(&row, &JsValue::from_str("v")).map_err(|e| storage_error("load", &e))?;
            let bytes = Uint8Array::new(&value).to_vec();
            records.push((key.clone(), Record::decode(&key, &bytes)?));
        }
        Ok(records)
    }

    /// Stores `writes` atomically.
    fn commit_now(&self, writes: &[Write]) -> Result<(), FerryError> {
        if writes.is_empty() {
            return Ok(());
        }
        let upsert = format!("INSERT OR REPLACE INTO {TABLE} (k, v) VALUES (?, ?)");
        let delete = format!("DELETE FROM {TABLE} WHERE k = ?");
        let mut statements = Vec::with_capacity(writes.len());
        for (key, record) in writes {
            let text = JSON::stringify(&key_to_js(key)).map_err(|e| storage_error("commit", &e))?;
            statements.push(match record {
                Some(record) => (true, Array::of2(&text, &Uint8Array::from(record.encode().as_slice()).buffer())),
                None => (false, Array::of1(&text)),
            });
        }
        let sql: sys::SqlStorage = self.sql.clone().unchecked_into();
        let failed: Rc<RefCell<Option<JsValue>>> = Rc::default();
        let failure = failed.clone();
        // `transactionSync(callback)` rolls every write back when the callback throws.
        let callback = Closure::once(move || -> Result<(), JsValue> {
            for (upserts, bindings) in statements {
                sql.exec(if upserts { &upsert } else { &delete }, &bindings).inspect_err(|e| *failure.borrow_mut() = Some(e.clone()))?;
            }
            Ok(())
        });
        let outcome = self.storage.transaction_sync(callback.as_ref().unchecked_ref());
        match (outcome, failed.take()) {
            (_, Some(error)) | (Err(error), None) => Err(storage_error("commit", &error)),
            (Ok(_), None) => Ok(()),
        }
    }
}

/// Synchronous underneath: both futures are ready at once. Only this object writes
/// its storage, so it counts no versions: a caller that trusts its view is current.
impl Store for DurableStore {
    async fn load(&self) -> Result<(Vec<(Key, Record)>, Version), FerryError> {
        Ok((self.load_now()?, 0))
    }

    async fn transact(&self, seen: Option<Version>, run: impl FnOnce(Option<Refresh>) -> Result<Vec<Write>, FerryError>) -> Result<Version, FerryError> {
        let fresh = match seen {
            Some(_) => None,
            None => Some(Refresh::Everything(self.load_now()?)),
        };
        self.commit_now(&run(fresh)?)?;
        Ok(0)
    }
}
