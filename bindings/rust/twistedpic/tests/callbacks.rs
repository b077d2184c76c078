//! Rust code called by the library: a memory policy through the C vtable, and
//! panics in callbacks, which must never unwind into C.
mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{options, panic_message, registry, row, DropCounter, Token, CONFIG, GIB};
use twistedpic::{MemoryPolicy, Options, PolicyModel, Reason, Registry, State};

#[derive(Default)]
struct Seen {
    selects: Vec<(Vec<String>, u64)>, // evictable names offered, need_bytes
    accesses: Vec<String>,
}

/// Picks the last evictable model, like the C API test's policy; panics on
/// its first selection when asked to.
struct PickLast {
    seen: Arc<Mutex<Seen>>,
    panic_once: bool,
    _token: Token,
}

impl MemoryPolicy for PickLast {
    fn select_victims(&mut self, models: &[PolicyModel], need_bytes: u64) -> Vec<usize> {
        let evictable: Vec<String> = models.iter().filter(|m| m.evictable).map(|m| m.name.clone()).collect();
        self.seen.lock().unwrap().selects.push((evictable, need_bytes));
        if std::mem::take(&mut self.panic_once) {
            panic!("boom from the policy");
        }
        models.iter().rposition(|m| m.evictable).into_iter().collect()
    }

    fn on_access(&mut self, model: &str) {
        self.seen.lock().unwrap().accesses.push(model.to_owned());
    }
}

fn with_policy(panic_once: bool) -> (Registry, Arc<Mutex<Seen>>, DropCounter) {
    let (seen, drops) = (Arc::default(), DropCounter::default());
    let policy = PickLast { seen: Arc::clone(&seen), panic_once, _token: drops.token() };
    (Registry::from_str(CONFIG, options(10).policy(Box::new(policy))).unwrap(), seen, drops)
}

#[test]
fn rust_policy_chooses_the_victim() {
    let (reg, seen, drops) = with_policy(false);
    for name in ["a", "b", "c"] {
        drop(reg.acquire(name).unwrap()); // c needs room: the policy picks b, the built-ins would pick a (LRU)
    }
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.selects.len(), 1);
        assert_eq!(seen.selects[0].0, ["a", "b"]);
        assert!(seen.selects[0].1 > 0 && seen.selects[0].1 <= 4 * GIB, "need_bytes {}", seen.selects[0].1);
        assert_eq!(seen.accesses, ["a", "b", "c"]);
    }
    assert_eq!(row(&reg, "b").state, State::Offloaded);
    assert_eq!(row(&reg, "a").state, State::Resident);
    assert_eq!(drops.drops(), 0, "the registry owns the policy");
    drop(reg);
    assert_eq!(drops.drops(), 1, "dropped exactly once, with the registry");

    // Options that never make a registry drop their policy too.
    let drops = DropCounter::default();
    let policy = PickLast { seen: Arc::default(), panic_once: false, _token: drops.token() };
    assert!(Registry::from_str("{", options(10).policy(Box::new(policy))).is_err());
    assert_eq!(drops.drops(), 1);
}

#[test]
fn panicking_policy_resumes_in_the_caller() {
    let (reg, seen, _) = with_policy(true);
    drop(reg.acquire("a").unwrap());
    drop(reg.acquire("b").unwrap());
    let caught = catch_unwind(AssertUnwindSafe(|| reg.acquire("c"))).unwrap_err();
    assert_eq!(panic_message(&*caught), "boom from the policy");
    // The panicking policy had no opinion: the built-ins made room, and the
    // lease taken meanwhile was released while unwinding.
    let c = row(&reg, "c");
    assert_eq!((c.state, c.leases), (State::Resident, 0));
    assert_eq!(row(&reg, "a").state, State::Offloaded, "the built-in LRU's victim");
    // The registry and the policy keep working: a needs room, the policy picks c.
    drop(reg.acquire("a").unwrap());
    assert_eq!(seen.lock().unwrap().selects.len(), 2);
    assert_eq!(row(&reg, "c").state, State::Offloaded);
}

#[test]
fn panicking_subscriber_resumes_in_the_caller() {
    let reg = registry();
    let id = reg.subscribe(|e| panic!("boom from the subscriber on {}", e.model)).unwrap();
    let caught = catch_unwind(AssertUnwindSafe(|| reg.acquire("a"))).unwrap_err();
    assert_eq!(panic_message(&*caught), "boom from the subscriber on a");
    assert_eq!(row(&reg, "a").leases, 0);
    reg.unsubscribe(id).unwrap();
    assert_eq!(reg.acquire("a").unwrap().name(), "a");
}

#[test]
fn panic_on_a_library_thread_is_contained() {
    // An idle timeout unloads on the background thread, whose event panics
    // where no Rust caller can receive it.
    let config = CONFIG.replace(r#""host_budget_bytes""#, r#""policy": {"idle_timeout_s": 0.05}, "host_budget_bytes""#);
    let reg = Registry::from_str(&config, Options::new().simulated_device(10 * GIB)).unwrap();
    let ttl_events = Arc::new(Mutex::new(0));
    let count = Arc::clone(&ttl_events);
    reg.subscribe(move |e| {
        if e.reason == Reason::Ttl {
            *count.lock().unwrap() += 1;
            panic!("boom on the background thread");
        }
    })
    .unwrap();
    drop(reg.acquire("a").unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while *ttl_events.lock().unwrap() == 0 {
        assert!(Instant::now() < deadline, "no idle timeout within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_ne!(row(&reg, "a").state, State::Resident);
    assert_eq!(reg.acquire("a").unwrap().name(), "a", "nothing is left to resume on this thread");
}
