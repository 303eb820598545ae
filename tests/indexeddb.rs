//! The IndexedDB store itself, in headless Chromium (`wasm-bindgen-test`): atomic
//! commits, reopening, the commit count other contexts are detected by, schema
//! versions, and how failures map to error codes.
#![cfg(target_arch = "wasm32")]

use ferry::core::records::{Key, Record, SCHEMA_VERSION};
use ferry::core::{BusConfig, Engine, ErrorCode, OutgoingMessage, TopicConfig, Value};
use ferry::store::indexeddb::{Durability, IndexedDbStore, Refresh};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn unique(label: &str) -> String {
    format!("{label}-{}", (js_sys::Math::random() * 1e12) as u64)
}

/// Sends `count` messages through an engine and returns its writes.
fn writes_of_a_send(engine: &mut Engine, count: usize) -> Vec<ferry::core::Write> {
    let messages: Vec<OutgoingMessage> = (0..count).map(|i| OutgoingMessage::new(Value::string(format!("m{i}")))).collect();
    engine.send("t", &messages, 1_000).expect("send");
    engine.begin_commit()
}

#[wasm_bindgen_test]
async fn commits_are_read_back_after_reopening() {
    let name = unique("reopen");
    let store = IndexedDbStore::open(&name, Durability::Relaxed).await.expect("open");
    let (records, seen) = store.snapshot().await.expect("snapshot");
    assert!(records.is_empty());
    let mut engine = Engine::open(BusConfig::default(), 1, records).expect("engine");
    let writes = writes_of_a_send(&mut engine, 300);
    let after = store.transact(seen, |fresh| {
        assert!(fresh.is_none(), "nobody else wrote");
        writes
    });
    let after = after.await.expect("commit");
    assert_eq!(after, seen + 1.0);
    engine.end_commit(true);
    store.close();

    let reopened = IndexedDbStore::open(&name, Durability::Strict).await.expect("reopen");
    let (records, count) = reopened.snapshot().await.expect("snapshot");
    assert_eq!(count, after);
    let again = Engine::open(BusConfig::default(), 1, records).expect("engine");
    assert_eq!(again.stats(), engine.stats());
    assert_eq!(again.read_log("t", 0, 0, 1000), engine.read_log("t", 0, 0, 1000));
}

#[wasm_bindgen_test]
async fn a_stale_view_gets_what_changed_or_everything() {
    let name = unique("stale");
    let first = IndexedDbStore::open(&name, Durability::Relaxed).await.expect("open");
    let second = IndexedDbStore::open(&name, Durability::Relaxed).await.expect("open");
    let mut writer = Engine::open(BusConfig::default(), 1, Vec::new()).expect("engine");
    writer.create_topic("t", TopicConfig::default()).expect("topic");
    let writes = writer.begin_commit();
    writer.end_commit(true);
    let seen = first.transact(0.0, move |_| writes).await.expect("commit");
    // A context that never saw a commit reads every record.
    let mut handed = None;
    second
        .transact(0.0, |fresh| {
            handed = fresh;
            Vec::new()
        })
        .await
        .expect("transact");
    let Some(Refresh::Everything(records)) = handed else { panic!("every record, because another context committed") };
    let mut follower = Engine::open(BusConfig::default(), 1, records).expect("engine");

    // Two more commits by the first context: the second gets just their keys.
    let mut count = seen;
    for _ in 0..2 {
        let writes = writes_of_a_send(&mut writer, 700);
        writer.end_commit(true);
        count = first.transact(count, move |_| writes).await.expect("commit");
    }
    let mut handed = None;
    second
        .transact(seen, |fresh| {
            handed = fresh;
            Vec::new()
        })
        .await
        .expect("transact");
    let Some(Refresh::Changes(changes)) = handed else { panic!("the changes, because the log reaches back") };
    assert!(changes.iter().all(|(key, _)| matches!(key, Key::Partition(..) | Key::Chunk(..) | Key::Meta)), "{changes:?}");
    follower.apply_stored(changes).expect("apply");
    assert_eq!(follower.stats(), writer.stats());
    assert_eq!(follower.read_log("t", 0, 0, 2000), writer.read_log("t", 0, 0, 2000));
}

#[wasm_bindgen_test]
async fn a_failed_commit_stores_nothing_and_names_the_error() {
    let name = unique("failure");
    let store = IndexedDbStore::open(&name, Durability::Relaxed).await.expect("open");
    let mut engine = Engine::open(BusConfig::default(), 1, Vec::new()).expect("engine");
    let writes = writes_of_a_send(&mut engine, 10);
    store.close();
    let error = store.transact(0.0, move |_| writes).await.expect_err("a closed database refuses");
    assert_eq!(error.code, ErrorCode::Storage);
    assert!(error.message.contains("InvalidStateError"), "{}", error.message);
    let reopened = IndexedDbStore::open(&name, Durability::Relaxed).await.expect("reopen");
    assert!(reopened.snapshot().await.expect("snapshot").0.is_empty());
}

#[wasm_bindgen_test]
async fn newer_versions_are_refused() {
    // A database upgraded past this layout's IndexedDB version by a newer ferry.
    let name = unique("newer-database");
    let factory: web_sys::IdbFactory = js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into()).unwrap().unchecked_into();
    let request = factory.open_with_u32(&name, 99).unwrap();
    let opened = js_sys::Promise::new(&mut |resolve, _reject| request.set_onsuccess(Some(&resolve)));
    JsFuture::from(opened).await.unwrap();
    request.result().unwrap().unchecked_into::<web_sys::IdbDatabase>().close();
    let error = IndexedDbStore::open(&name, Durability::Relaxed).await.err().expect("refused");
    assert_eq!(error.code, ErrorCode::IncompatibleStorage, "{}", error.message);

    // Records written by a newer schema.
    let records = vec![(Key::Meta, Record::Meta { schema_version: SCHEMA_VERSION + 1 })];
    assert_eq!(Engine::open(BusConfig::default(), 1, records).unwrap_err().code, ErrorCode::IncompatibleStorage);
}
