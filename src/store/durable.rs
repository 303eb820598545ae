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

use js_sys::{Array, Function, Reflect, Uint8Array, JSON};
use wasm_bindgen::prelude::*;

use super::js_keys::{key_from_js, key_to_js};
use super::Store;
use crate::core::records::{Key, Record};
use crate::core::{ErrorCode, FerryError, Write};

const TABLE: &str = "ferry_records";
const NAME_TABLE: &str = "ferry_object";

pub struct DurableStore {
    /// `ctx.storage`.
    storage: JsValue,
    /// `ctx.storage.sql`.
    sql: JsValue,
}

fn storage_error(what: &str, error: &JsValue) -> FerryError {
    let message = Reflect::get(error, &JsValue::from_str("message")).ok().and_then(|m| m.as_string()).unwrap_or_default();
    // SQLITE_FULL is the object's storage limit: the edge's QUOTA_EXCEEDED.
    let code = if message.contains("SQLITE_FULL") { ErrorCode::QuotaExceeded } else { ErrorCode::Storage };
    FerryError::new(code, format!("Durable Object storage {what} failed: {message}").trim_end().to_string())
}

fn method(object: &JsValue, name: &str) -> Result<Function, FerryError> {
    Reflect::get(object, &JsValue::from_str(name))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or_else(|| FerryError::storage(format!("Durable Object storage has no {name}(): bind a SQLite-backed class")))
}

impl DurableStore {
    /// The store of the object whose `ctx.storage` this is; creates its table.
    pub fn open(storage: JsValue) -> Result<DurableStore, FerryError> {
        let sql = Reflect::get(&storage, &JsValue::from_str("sql")).ok().filter(JsValue::is_object).ok_or_else(|| {
            FerryError::storage("ctx.storage.sql is missing: the Durable Object class must use SQLite storage (new_sqlite_classes)")
        })?;
        let store = DurableStore { storage, sql };
        store.exec(&format!("CREATE TABLE IF NOT EXISTS {TABLE} (k TEXT PRIMARY KEY, v BLOB NOT NULL)"), &[], "open")?;
        store.exec(&format!("CREATE TABLE IF NOT EXISTS {NAME_TABLE} (name TEXT NOT NULL)"), &[], "open")?;
        Ok(store)
    }

    /// The rows of `query`.
    fn rows(&self, query: &str, bindings: &[JsValue], what: &str) -> Result<Array, FerryError> {
        let cursor = self.exec(query, bindings, what)?;
        Ok(method(&cursor, "toArray")?.call0(&cursor).map_err(|e| storage_error(what, &e))?.unchecked_into())
    }

    /// The name the object was first used under, if it was.
    pub fn name(&self) -> Result<Option<String>, FerryError> {
        let rows = self.rows(&format!("SELECT name FROM {NAME_TABLE}"), &[], "read the object's name")?;
        Ok(Reflect::get(&rows.get(0), &JsValue::from_str("name")).ok().and_then(|n| n.as_string()))
    }

    pub fn set_name(&self, name: &str) -> Result<(), FerryError> {
        self.exec(&format!("INSERT INTO {NAME_TABLE} (name) VALUES (?)"), &[JsValue::from_str(name)], "store the object's name").map(|_| ())
    }

    /// `sql.exec(query, ...bindings)`.
    fn exec(&self, query: &str, bindings: &[JsValue], what: &str) -> Result<JsValue, FerryError> {
        let args = Array::of1(&JsValue::from_str(query));
        for binding in bindings {
            args.push(binding);
        }
        method(&self.sql, "exec")?.apply(&self.sql, &args).map_err(|e| storage_error(what, &e))
    }

    /// Every stored record.
    fn load_now(&self) -> Result<Vec<(Key, Record)>, FerryError> {
        let rows = self.rows(&format!("SELECT k, v FROM {TABLE}"), &[], "load")?;
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
        let mut statements = Vec::with_capacity(writes.len());
        for (key, record) in writes {
            let text = JSON::stringify(&key_to_js(key)).map_err(|e| storage_error("commit", &e))?;
            statements.push(match record {
                Some(record) => Array::of3(&JsValue::from_str(&format!("INSERT OR REPLACE INTO {TABLE} (k, v) VALUES (?, ?)")), &text, &Uint8Array::from(record.encode().as_slice()).buffer()),
                None => Array::of2(&JsValue::from_str(&format!("DELETE FROM {TABLE} WHERE k = ?")), &text),
            });
        }
        let exec = method(&self.sql, "exec")?;
        let sql = self.sql.clone();
        let failed: Rc<RefCell<Option<JsValue>>> = Rc::default();
        let failure = failed.clone();
        // `transactionSync(callback)` rolls every write back when the callback throws.
        let callback = Closure::once(move || -> Result<(), JsValue> {
            for statement in statements {
                exec.apply(&sql, &statement).inspect_err(|e| *failure.borrow_mut() = Some(e.clone()))?;
            }
            Ok(())
        });
        let outcome = method(&self.storage, "transactionSync")?.call1(&self.storage, callback.as_ref().unchecked_ref());
        match (outcome, failed.take()) {
            (_, Some(error)) | (Err(error), None) => Err(storage_error("commit", &error)),
            (Ok(_), None) => Ok(()),
        }
    }
}

/// Synchronous underneath: both futures are ready at once.
impl Store for DurableStore {
    async fn load(&self) -> Result<Vec<(Key, Record)>, FerryError> {
        self.load_now()
    }

    async fn commit(&self, writes: &[Write]) -> Result<(), FerryError> {
        self.commit_now(writes)
    }
}
