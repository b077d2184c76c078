//! Registry lifecycle: the model list, leases, unloading, stats, events,
//! leases outliving the registry, and use from several threads.
mod common;

use std::sync::{Arc, Mutex};
use std::thread;

use common::{options, registry, row, DropCounter, CONFIG, GIB};
use twistedpic::{MemoryPolicy, PolicyModel, Reason, Registry, State, Tier};

#[test]
fn list_acquire_unload_stats() {
    let reg = registry();
    let models = reg.list().unwrap();
    assert_eq!(models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    let a = &models[0];
    assert_eq!((a.source.as_str(), a.pipeline_type.as_str(), a.dtype.as_str()), ("org/a", "sd3", "fp16"));
    assert_eq!((a.state, a.tier, a.leases, a.load_count), (State::Unloaded, Tier::Disk, 0, 0));
    assert_eq!((a.last_use_age, a.expires_in, &a.last_error), (None, None, &None));
    assert_eq!((models[1].source.as_str(), models[1].priority), ("/models/b", 3));

    let lease = reg.acquire("a").unwrap();
    assert_eq!((lease.name(), lease.device_bytes()), ("a", 4 * GIB));
    let a = row(&reg, "a");
    assert_eq!(
        (a.state, a.tier, a.leases, a.device_bytes, a.load_count),
        (State::Resident, Tier::Device, 1, 4 * GIB, 1)
    );
    assert!(a.last_use_age.is_some());
    drop(lease);
    assert_eq!(row(&reg, "a").leases, 0);

    assert_eq!(reg.unload("a", Tier::Host).unwrap(), (4 * GIB) as i64);
    let a = row(&reg, "a");
    assert_eq!((a.state, a.tier, a.device_bytes, a.host_bytes), (State::Offloaded, Tier::Host, 0, 4 * GIB));
    reg.preload("a").unwrap(); // a reload from the host tier
    assert_eq!(row(&reg, "a").state, State::Resident);
    assert_eq!(reg.unload("a", Tier::Disk).unwrap(), (4 * GIB) as i64);
    assert_eq!((row(&reg, "a").state, row(&reg, "a").host_bytes), (State::Unloaded, 0));
    reg.preload("b").unwrap();
    reg.unload_all(Tier::Disk).unwrap();
    assert_eq!(row(&reg, "b").state, State::Unloaded);
    reg.tick().unwrap();

    let s = reg.stats().unwrap();
    assert_eq!((s.misses, s.loads, s.reloads), (1, 2, 1));
    assert_eq!(s.evictions(Reason::Explicit), 3);
    assert_eq!(s.evictions_by_reason.iter().sum::<u64>(), 3);
    assert_eq!((s.device_bytes, s.host_bytes, s.peak_device_bytes), (0, 0, 4 * GIB));
}

#[test]
fn events_follow_the_preset() {
    let reg = Registry::from_str(CONFIG, options(10).preset("max_gpu_availability")).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = DropCounter::default();
    let (sink, token) = (seen.clone(), kept.token());
    let id = reg
        .subscribe(move |e| {
            let _ = &token; // dropped with the closure
            sink.lock().unwrap().push(e.clone());
        })
        .unwrap();
    drop(reg.acquire("b").unwrap()); // unload-after moves it to the host on release
    reg.unsubscribe(id).unwrap();
    assert_eq!(kept.drops(), 1, "unsubscribe drops the closure");
    drop(reg.acquire("b").unwrap());

    let seen = seen.lock().unwrap();
    let text: Vec<String> = seen.iter().map(|e| format!("{}:{}->{}:{}", e.model, e.from, e.to, e.reason)).collect();
    assert_eq!(text, ["b:disk->device:lazy", "b:device->host:unload-after"]);
    assert_eq!(
        (seen[1].reason, seen[1].bytes, seen[1].bytes_returned),
        (Reason::UnloadAfter, 4 * GIB, (4 * GIB) as i64)
    );
    assert!(!seen[0].failed());
    assert_eq!(reg.stats().unwrap().evictions(Reason::UnloadAfter), 2);
}

/// A policy that only counts its drops.
struct Inert(#[allow(dead_code)] common::Token);

impl MemoryPolicy for Inert {
    fn select_victims(&mut self, _: &[PolicyModel], _: u64) -> Vec<usize> {
        Vec::new()
    }
}

#[test]
fn registry_dropped_while_a_lease_lives() {
    let policy = DropCounter::default();
    let subscriber = DropCounter::default();
    let reg = Registry::from_str(CONFIG, options(10).policy(Box::new(Inert(policy.token())))).unwrap();
    let token = subscriber.token();
    reg.subscribe(move |_| {
        let _ = &token;
    })
    .unwrap();
    let lease = reg.acquire("a").unwrap();
    drop(reg);
    // Deferred: the lease still reads its model, and what the library may
    // still call lives until the lease goes.
    assert_eq!((lease.name(), lease.device_bytes()), ("a", 4 * GIB));
    assert_eq!((policy.drops(), subscriber.drops()), (0, 0));
    drop(lease);
    assert_eq!((policy.drops(), subscriber.drops()), (1, 1));
}

#[test]
fn concurrent_acquire_release() {
    // Two of the three models fit; with the default admission timeout
    // (minutes) admissions wait their turn for other threads' leases.
    let reg = Arc::new(Registry::from_str(CONFIG, options(10)).unwrap());
    const THREADS: usize = 4;
    const ROUNDS: usize = 25;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let reg = Arc::clone(&reg);
            thread::spawn(move || {
                for i in 0..ROUNDS {
                    let name = ["a", "b", "c"][(t + i) % 3];
                    let lease = reg.acquire(name).unwrap_or_else(|e| panic!("acquire {name}: {e}"));
                    assert_eq!((lease.name(), lease.device_bytes()), (name, 4 * GIB));
                    // A lease may be released on another thread.
                    thread::spawn(move || drop(lease)).join().unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let s = reg.stats().unwrap();
    assert_eq!(s.hits + s.misses, (THREADS * ROUNDS) as u64);
    assert_eq!(s.admission_failures, 0);
    assert!(s.peak_device_bytes <= 8 * GIB);
    assert!(reg.list().unwrap().iter().all(|m| m.leases == 0));
}
