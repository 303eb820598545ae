//! Web Locks for fast failover between the contexts sharing a bus.
//!
//! Each member of a group holds a lock named after it for as long as it runs. The
//! browser releases a lock the moment its context goes (tab closed, renderer
//! crashed, service worker killed), and grants it to whoever asked for it next:
//! the context that runs a group's rounds (the writer, or each context that writes
//! its bus itself) asks for the locks of the members they list ([`Watcher`]), so
//! the first grant tells it that member is gone, long before its session would run
//! out. One request per member for the origin, where the writer runs every round.
//!
//! Where a context has no `navigator.locks`, its members hold nothing and are only
//! noticed gone when their session runs out. A member's id says which it is
//! ([`member_id`]): one that holds a lock is taken for gone as soon as its lock is
//! free, also when it went before the others first looked (a tab closed before
//! another opened); one that holds none is watched only while a lock of its name
//! is seen held, so it is never taken for gone.

#[cfg(feature = "engine")]
use std::cell::RefCell;

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
#[cfg(feature = "engine")]
use wasm_bindgen_futures::spawn_local;
use wasm_bindgen_futures::JsFuture;
use web_sys::AbortController;

/// `navigator.locks`, where the context has it.
fn lock_manager() -> Option<Object> {
    let navigator = Reflect::get(&js_sys::global(), &JsValue::from_str("navigator")).ok().filter(JsValue::is_object)?;
    Reflect::get(&navigator, &JsValue::from_str("locks")).ok().filter(JsValue::is_object).map(JsCast::unchecked_into)
}

/// Whether the context has Web Locks.
pub fn available() -> bool {
    lock_manager().is_some()
}

/// Marks the id of a member that holds its lock: not a hexadecimal digit, so no
/// id without the mark (those of earlier versions included) has it there.
const LOCKED_MARK: char = 'w';

/// A new member id of `group`: the kind of this context (which `bus.stats()`
/// reads back, [`crate::core::engine::member_context`]), then a random tail,
/// marked when this context has Web Locks (its member takes its lock before it
/// joins, and holds it for as long as it is in the group).
pub fn member_id(group: &str) -> String {
    let random = (js_sys::Math::random() * 2f64.powi(44)) as u64;
    let context = context_kind();
    match available() {
        true => format!("{group}-{context}-{LOCKED_MARK}{random:011x}"),
        false => format!("{group}-{context}-{random:012x}"),
    }
}

/// The kind of context this is, as a member id names it: from the global scope's
/// constructor, which every browser names as the HTML standard does; Node's global
/// is a plain object with `process`.
fn context_kind() -> &'static str {
    let global = js_sys::global();
    match String::from(global.constructor().name()).as_str() {
        "Window" => "page",
        "DedicatedWorkerGlobalScope" => "worker",
        "SharedWorkerGlobalScope" => "shared",
        "ServiceWorkerGlobalScope" => "service",
        _ if Reflect::has(&global, &JsValue::from_str("process")).unwrap_or(false) => "node",
        _ => "other",
    }
}

/// Whether `member`'s id says it holds its lock.
#[cfg(feature = "engine")]
fn holds_its_lock(member: &str) -> bool {
    member.rsplit('-').next().is_some_and(|tail| tail.len() == 12 && tail.starts_with(LOCKED_MARK))
}

/// The lock a member holds for its life.
fn member_lock(bus: &str, group: &str, member: &str) -> String {
    format!("ferry:{bus}:{group}:{member}")
}

/// A promise and the function that resolves it.
fn deferred() -> (Promise, Function) {
    let mut resolve = JsValue::UNDEFINED;
    let promise = Promise::new(&mut |r: Function, _reject: Function| resolve = r.into());
    (promise, resolve.unchecked_into())
}

/// `navigator.locks.request(name, options, callback)`; the returned promise
/// settles when the lock is released, or rejects when the request fails.
fn request(manager: &Object, name: &str, options: &Object, callback: &JsValue) -> Option<Promise> {
    let request: Function = Reflect::get(manager, &JsValue::from_str("request")).ok()?.dyn_into().ok()?;
    request.call3(manager, &JsValue::from_str(name), options, callback).ok()?.dyn_into().ok()
}

/// The lock a member holds for its life.
pub struct MemberLock {
    release: Function,
}

impl MemberLock {
    /// Takes the lock of `member` and holds it until [`MemberLock::release`]; `None`
    /// where the context has no Web Locks or refused the request.
    pub async fn take(bus: &str, group: &str, member: &str) -> Option<MemberLock> {
        let manager = lock_manager()?;
        let (granted, on_granted) = deferred();
        let (released, release) = deferred();
        // The lock is held until the promise the callback returns settles.
        let callback = Closure::once_into_js(move |_lock: JsValue| {
            let _ = on_granted.call0(&JsValue::UNDEFINED);
            released
        });
        let requested = request(&manager, &member_lock(bus, group, member), &Object::new(), &callback)?;
        // A request that fails settles `requested` before the grant ever comes.
        JsFuture::from(Promise::race(&Array::of2(&granted, &requested))).await.ok()?;
        Some(MemberLock { release })
    }

    pub fn release(&self) {
        let _ = self.release.call0(&JsValue::UNDEFINED);
    }
}

/// A context's requests for the locks of the members its rounds list.
#[cfg(feature = "engine")]
pub struct Watcher {
    bus: String,
    /// Withdraws every request, when the bus closes.
    withdraw: AbortController,
    /// The `(group, member)`s whose locks are asked for.
    watched: RefCell<Vec<(String, String)>>,
}

#[cfg(feature = "engine")]
impl Watcher {
    /// `None` where the context has no Web Locks.
    pub fn new(bus: &str) -> Option<Watcher> {
        lock_manager()?;
        Some(Watcher { bus: bus.into(), withdraw: AbortController::new().ok()?, watched: RefCell::default() })
    }

    /// Of `members` of `group` (a round's list), those not watched yet, now taken
    /// for watched; forgets the group's members no longer listed. A round that
    /// lists no new member costs a look at the list, nothing more.
    pub fn unwatched(&self, group: &str, members: &[String]) -> Vec<String> {
        let mut watched = self.watched.borrow_mut();
        watched.retain(|(g, m)| g != group || members.contains(m));
        let new: Vec<String> = members.iter().filter(|m| !watched.iter().any(|(g, w)| g == group && w == *m)).cloned().collect();
        watched.extend(new.iter().map(|m| (group.to_string(), m.clone())));
        new
    }

    /// Asks for the lock of each of `new` members of `group` ([`Watcher::unwatched`])
    /// that holds one (by its id, or seen held now); `gone(member)` runs when one
    /// is granted.
    pub fn watch(&self, group: &str, new: Vec<String>, gone: impl Fn(String) + Clone + 'static) {
        let (bus, group, signal) = (self.bus.clone(), group.to_string(), self.withdraw.signal());
        spawn_local(async move {
            let held = held_names().await;
            for member in new {
                let name = member_lock(&bus, &group, &member);
                if holds_its_lock(&member) || held.contains(&name) {
                    let gone = gone.clone();
                    watch(&name, &signal, move || gone(member));
                }
            }
        });
    }

    pub fn stop(&self) {
        self.withdraw.abort();
    }
}

/// The names of the locks held in this origin right now.
#[cfg(feature = "engine")]
async fn held_names() -> Vec<String> {
    let Some(manager) = lock_manager() else { return Vec::new() };
    let query = Reflect::get(&manager, &JsValue::from_str("query")).ok().and_then(|q| q.dyn_into::<Function>().ok());
    let Some(snapshot) = query.and_then(|q| q.call0(&manager).ok()).and_then(|p| p.dyn_into::<Promise>().ok()) else { return Vec::new() };
    let Ok(snapshot) = JsFuture::from(snapshot).await else { return Vec::new() };
    let held = Reflect::get(&snapshot, &JsValue::from_str("held")).ok().and_then(|h| h.dyn_into::<Array>().ok());
    held.map(|held| held.iter().filter_map(|lock| Reflect::get(&lock, &JsValue::from_str("name")).ok()?.as_string()).collect()).unwrap_or_default()
}

/// Calls `gone` once this context is granted the lock `name`, which happens when
/// its holder released it; the lock is given back at once. Aborting `signal`
/// withdraws the request.
#[cfg(feature = "engine")]
fn watch(name: &str, signal: &JsValue, gone: impl FnOnce() + 'static) {
    let Some(manager) = lock_manager() else { return };
    let options = Object::new();
    let _ = Reflect::set(&options, &JsValue::from_str("signal"), signal);
    let callback = Closure::once_into_js(move |_lock: JsValue| gone());
    if let Some(requested) = request(&manager, name, &options, &callback) {
        ignore_withdrawal(&requested);
    }
}

/// A withdrawn request rejects with an AbortError: expected, not reported.
fn ignore_withdrawal(requested: &Promise) {
    let ignore = Closure::once_into_js(|_error: JsValue| {});
    if let Some(catch) = Reflect::get(requested, &JsValue::from_str("catch")).ok().and_then(|c| c.dyn_into::<Function>().ok()) {
        let _ = catch.call1(requested, &ignore);
    }
}

/// A lock asked for, and held from its grant until [`Claim::release`]; releasing it
/// before the grant withdraws the request.
pub struct Claim {
    release: Function,
    withdraw: AbortController,
}

impl Claim {
    /// Asks for the lock `name`; `granted` runs when this context gets it. `None`
    /// where the context has no Web Locks.
    pub fn request(name: &str, granted: impl FnOnce() + 'static) -> Option<Claim> {
        let manager = lock_manager()?;
        let withdraw = AbortController::new().ok()?;
        let (released, release) = deferred();
        // The lock is held until the promise the callback returns settles.
        let callback = Closure::once_into_js(move |_lock: JsValue| {
            granted();
            released
        });
        let options = Object::new();
        let _ = Reflect::set(&options, &JsValue::from_str("signal"), &withdraw.signal());
        ignore_withdrawal(&request(&manager, name, &options, &callback)?);
        Some(Claim { release, withdraw })
    }

    pub fn release(&self) {
        self.withdraw.abort();
        let _ = self.release.call0(&JsValue::UNDEFINED);
    }
}
