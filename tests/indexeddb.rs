//! The IndexedDB store itself, in headless Chromium (`wasm-bindgen-test`): atomic
//! commits, reopening, the commit count other contexts are detected by, schema
//! versions, how failures map to error codes, and the one commit driver
//! ([`ferry::store::commit`]) sharing a database through injected failures.
#![cfg(target_arch = "wasm32")]

use ferry::core::records::{Key, Record, SCHEMA_VERSION};
use ferry::core::{BusConfig, Engine, ErrorCode, OutgoingMessage, TopicConfig, Value};
use ferry::store::indexeddb::{Durability, IndexedDbStore};
use ferry::store::{commit, FaultyStore, Refresh, Replica, Store};
use std::cell::RefCell;
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
    let (records, seen) = store.load().await.expect("load");
    assert!(records.is_empty());
    let mut engine = Engine::open(BusConfig::default(), 1, records).expect("engine");
    let writes = writes_of_a_send(&mut engine, 300);
    let after = store.transact(Some(seen), |fresh| {
        assert!(fresh.is_none(), "nobody else wrote");
        Ok(writes)
    });
    let after = after.await.expect("commit");
    assert_eq!(after, seen + 1);
    engine.end_commit(true);
    store.close();

    let reopened = IndexedDbStore::open(&name, Durability::Strict).await.expect("reopen");
    let (records, count) = reopened.load().await.expect("load");
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
    let seen = first.transact(Some(0), move |_| Ok(writes)).await.expect("commit");
    // A context that never saw a commit reads every record.
    let mut handed = None;
    second
        .transact(Some(0), |fresh| {
            handed = fresh;
            Ok(Vec::new())
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
        count = first.transact(Some(count), move |_| Ok(writes)).await.expect("commit");
    }
    let mut handed = None;
    second
        .transact(Some(seen), |fresh| {
            handed = fresh;
            Ok(Vec::new())
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
    let error = store.transact(Some(0), move |_| Ok(writes)).await.expect_err("a closed database refuses");
    assert_eq!(error.code, ErrorCode::Storage);
    assert!(error.message.contains("InvalidStateError"), "{}", error.message);
    let reopened = IndexedDbStore::open(&name, Durability::Relaxed).await.expect("reopen");
    assert!(reopened.load().await.expect("load").0.is_empty());
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

/// Two contexts' engines on one database through the commit driver every build
/// runs, one of them behind a store that fails a third of its commits: each commit
/// first catches up with the other's, a failed one stores nothing and leaves its
/// engine as before, and the stored bus holds exactly the sends that succeeded.
#[wasm_bindgen_test]
async fn the_commit_driver_shares_a_database_through_failures() {
    let name = unique("driver");
    let flaky = FaultyStore::new(IndexedDbStore::open(&name, Durability::Relaxed).await.expect("open"), 7);
    let steady = IndexedDbStore::open(&name, Durability::Relaxed).await.expect("open");
    let a = RefCell::new(Replica::open(&flaky, BusConfig::default(), 1).await.expect("open"));
    let b = RefCell::new(Replica::open(&steady, BusConfig::default(), 2).await.expect("open"));
    commit(&a, &flaky, || 1_000, |e, _| e.create_topic("t", TopicConfig::default())).await.expect("create");
    flaky.fail_randomly(333);
    let mut sent = Vec::new();
    let mut failed = 0;
    for i in 0..30 {
        let message = [OutgoingMessage::new(Value::string(format!("a{i}")))];
        let before = a.borrow().engine().stats();
        match commit(&a, &flaky, || 1_000, |e, now| e.send("t", &message, now)).await {
            Ok(_) => sent.push(format!("a{i}")),
            Err(error) => {
                assert_eq!(error.code, ErrorCode::Storage, "{}", error.message);
                failed += 1;
                // What the other context committed since stays caught up with.
                assert!(a.borrow().engine().stats().topics[0].partitions[0].high_offset >= before.topics[0].partitions[0].high_offset);
            }
        }
        let message = [OutgoingMessage::new(Value::string(format!("b{i}")))];
        commit(&b, &steady, || 1_000, |e, now| e.send("t", &message, now)).await.expect("send");
        sent.push(format!("b{i}"));
    }
    assert!(failed > 0 && failed < 30, "{failed} of 30 failed");
    flaky.fail_randomly(0);
    // An empty commit brings each engine up to what is stored.
    commit(&a, &flaky, || 1_000, |_, _| Ok(())).await.expect("catch up");
    commit(&b, &steady, || 1_000, |_, _| Ok(())).await.expect("catch up");
    let (records, _) = steady.load().await.expect("load");
    let stored = Engine::open(BusConfig::default(), 3, records).expect("engine");
    let log: Vec<String> = stored.read_log("t", 0, 0, 100).expect("read").iter().map(|m| m.value.text().into_owned()).collect();
    assert_eq!(log, sent);
    assert_eq!(a.borrow().engine().stats(), stored.stats());
    assert_eq!(b.borrow().engine().stats(), stored.stats());
}
