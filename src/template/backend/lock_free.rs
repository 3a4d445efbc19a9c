//! The lock-free back end: copy-on-write snapshots behind arc-swap, single-flight misses.

#![allow(unreachable_pub)]

use std::collections::HashMap;

use super::Backend;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering, Snapshot, SnapshotReader};
use crate::template::cache::{
    Hasher, LoadResult, Loaded, Shared, Slot, State, Template, cacheable, hasher, slot_result,
};
use crate::template::engine::Engine;
use crate::template::error::{GetError, LoadError};
use crate::template::loader::FileSystemLoader;

/// A concurrent miss in progress: the leader holds `result`'s mutex while it loads and
/// compiles; the others wait on that mutex and then reuse the result.
pub struct Flight<E: Engine> {
    generation: u64,
    result: Mutex<Option<LoadResult<E>>>,
}

impl<E: Engine> std::fmt::Debug for Flight<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Copy-on-write snapshots behind arc-swap; single-flight misses.
pub struct LockFreeBackend<E: Engine> {
    cell: Snapshot<State<E>>,
    /// Bumped after every write to `cell` (publish, remove, reset): a per-thread snapshot
    /// ([`LocalSnap`]) is still current while this has not moved.
    version: AtomicU64,
    /// Each thread's snapshot for `TemplateCache::render`; dropped with the cache.
    #[cfg(not(unlocked_loom))]
    locals: thread_local::ThreadLocal<std::cell::RefCell<Option<LocalSnap<E>>>>,
    /// In-flight misses by name. Only the miss path takes this mutex, briefly (never while
    /// loading or compiling); the hit path never touches it.
    flights: Mutex<HashMap<Box<str>, Arc<Flight<E>>, Hasher>>,
}

impl<E: Engine> std::fmt::Debug for LockFreeBackend<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.cell.load();
        f.debug_struct("LockFreeBackend")
            .field("generation", &state.generation)
            .field("cached", &state.map.len())
            .finish_non_exhaustive()
    }
}

/// Per-thread reader of [`LockFreeBackend`].
pub struct LockFreeReader<'a, E: Engine> {
    backend: &'a LockFreeBackend<E>,
    snap: Source<'a, E>,
}

impl<E: Engine> std::fmt::Debug for LockFreeReader<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockFreeReader").finish_non_exhaustive()
    }
}

/// Where a [`LockFreeReader`] keeps its snapshot.
enum Source<'a, E: Engine> {
    /// Its own (a kept `Reader`): re-validated by one atomic load of the snapshot pointer.
    Own(SnapshotReader<'a, State<E>>),
    /// This thread's slot in the backend (`TemplateCache::render`).
    #[cfg_attr(unlocked_loom, allow(dead_code))]
    Local(&'a mut LocalSnap<E>),
}

/// A thread's snapshot for `TemplateCache::render`, with the write count it was loaded at.
pub struct LocalSnap<E: Engine> {
    version: u64,
    state: Arc<State<E>>,
}

impl<E: Engine> std::fmt::Debug for LocalSnap<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSnap")
            .field("version", &self.version)
            .field("generation", &self.state.generation)
            .finish_non_exhaustive()
    }
}

impl<E: Engine> LockFreeReader<'_, E> {
    /// The current snapshot: one atomic load when nothing was written since the last call.
    #[inline]
    fn state(&mut self) -> &Arc<State<E>> {
        match &mut self.snap {
            Source::Own(reader) => reader.load(),
            Source::Local(local) => {
                // Acquire pairs with the Release bump that follows each write: a write that
                // happened before this call is seen (then `load_full` reads its state or a
                // newer one). A stale snapshot is only ever one that was current earlier.
                let version = self.backend.version.load(Ordering::Acquire);
                if version != local.version {
                    local.state = self.backend.cell.load_full();
                    local.version = version;
                }
                &local.state
            }
        }
    }
}

impl<E: Engine> LockFreeBackend<E> {
    fn from_state(state: State<E>) -> Self {
        Self {
            cell: Snapshot::new(state),
            version: AtomicU64::new(0),
            #[cfg(not(unlocked_loom))]
            locals: thread_local::ThreadLocal::new(),
            flights: Mutex::new(HashMap::with_hasher(hasher())),
        }
    }

    /// The miss path: single-flight load, compile and publish.
    fn miss(&self, shared: &Shared<E>, name: &str) -> Result<Arc<Loaded<E>>, GetError<E::Error>> {
        FileSystemLoader::check_name(name)?;
        self.single_flight(name, |state| shared.load_compile(state, name))
    }

    /// Runs `load` for `name` once among concurrent callers of one generation, publishes its
    /// result (if cacheable) and hands it to every caller.
    fn single_flight(
        &self,
        name: &str,
        load: impl FnOnce(&State<E>) -> Result<Arc<Loaded<E>>, GetError<E::Error>>,
    ) -> Result<Arc<Loaded<E>>, GetError<E::Error>> {
        let mut load = Some(load);
        loop {
            let mut flights = self.flights.lock();
            // Re-check under the registry lock: a leader publishes before it deregisters (under
            // this lock), so either its flight is still here or its result is in the snapshot.
            let current = self.cell.load_full();
            match current.map.get(name) {
                Some(Slot::Found(l)) => return Ok(Arc::clone(l)),
                Some(Slot::Missing(e)) => return Err(GetError::Load(LoadError::clone(e))),
                None => {}
            }
            if let Some(flight) = flights.get(name) {
                if flight.generation == current.generation {
                    let flight = Arc::clone(flight);
                    drop(flights);
                    let done = flight.result.lock();
                    if let Some(result) = done.as_ref() {
                        return result.clone();
                    }
                    // The leader panicked before finishing: drop its flight and retry.
                    drop(done);
                    let mut flights = self.flights.lock();
                    if flights.get(name).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                        flights.remove(name);
                    }
                    continue;
                }
            }
            // Lead this miss.
            let flight = Arc::new(Flight {
                generation: current.generation,
                result: Mutex::new(None),
            });
            let mut done = flight.result.lock();
            flights.insert(name.into(), Arc::clone(&flight));
            drop(flights);

            let load = load.take().expect("a leader runs `load` once and returns");
            let result = load(&current);
            if let Some(slot) = cacheable(&result) {
                self.publish(current, name, slot);
            }
            *done = Some(result.clone());
            let mut flights = self.flights.lock();
            if flights.get(name).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                flights.remove(name);
            }
            drop(flights);
            drop(done);
            return result;
        }
    }

    /// Tells per-thread snapshots that `cell` changed; call after every successful write.
    #[inline]
    fn written(&self) {
        // Release: see `LockFreeReader::state`.
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Publishes `slot` for `name` into `base`'s generation; gives up if the generation was
    /// reset meanwhile (a stale compile never enters a newer generation).
    fn publish(&self, mut seen: Arc<State<E>>, name: &str, slot: Slot<E>) {
        let generation = seen.generation;
        loop {
            if seen.generation != generation || seen.map.contains_key(name) {
                return;
            }
            let mut map = seen.map.clone();
            map.insert(name.into(), slot.clone());
            let next = Arc::new(seen.with_map(map));
            let found = self.cell.compare_and_swap(&seen, next);
            if Arc::ptr_eq(&found, &seen) {
                self.written();
                return;
            }
            seen = found;
        }
    }

    /// Removes `name` if its slot is `expected` (any slot when `None`).
    fn remove(&self, shared: &Shared<E>, name: &str, expected: Option<&Arc<Loaded<E>>>) -> bool {
        let mut seen = self.cell.load_full();
        loop {
            let removed = match (seen.map.get(name), expected) {
                (None, _) => return false,
                (Some(Slot::Found(l)), Some(want)) if !Arc::ptr_eq(l, want) => return false,
                (Some(slot), _) => slot.clone(),
            };
            let mut map = seen.map.clone();
            map.remove(name);
            let next = Arc::new(seen.with_map(map));
            let found = self.cell.compare_and_swap(&seen, next);
            if Arc::ptr_eq(&found, &seen) {
                self.written();
                // Only after readers can no longer find it in the cache: tell the engine.
                if let Slot::Found(l) = removed {
                    shared.engine.forget(&l.engine_gen, name, &l.compiled);
                }
                return true;
            }
            seen = found;
        }
    }

    fn reload_stale(&self, shared: &Shared<E>) {
        let state = self.cell.load_full();
        for (name, loaded) in state.stale() {
            self.remove(shared, &name, loaded.as_ref());
        }
    }
}

impl<E: Engine> Backend<E> for LockFreeBackend<E> {
    type Reader<'a> = LockFreeReader<'a, E>;

    fn new(shared: &Shared<E>) -> Self {
        Self::from_state(shared.new_state())
    }

    fn reader(&self) -> LockFreeReader<'_, E> {
        LockFreeReader {
            backend: self,
            snap: Source::Own(self.cell.reader()),
        }
    }

    #[cfg(not(unlocked_loom))]
    #[inline]
    fn with_local_reader<R>(&self, f: impl FnOnce(&mut LockFreeReader<'_, E>) -> R) -> R {
        let slot = self.locals.get_or(Default::default);
        // A render nested in a render on this thread (a template function calling back into
        // the cache) finds the slot borrowed: it uses a reader of its own.
        let Ok(mut local) = slot.try_borrow_mut() else {
            return f(&mut self.reader());
        };
        let local = local.get_or_insert_with(|| LocalSnap {
            // Relaxed: the Acquire load in `state` decides freshness; this only seeds it.
            version: self.version.load(Ordering::Relaxed).wrapping_sub(1),
            state: self.cell.load_full(),
        });
        f(&mut LockFreeReader {
            backend: self,
            snap: Source::Local(local),
        })
    }

    #[cfg(unlocked_loom)]
    fn with_local_reader<R>(&self, f: impl FnOnce(&mut LockFreeReader<'_, E>) -> R) -> R {
        f(&mut self.reader())
    }

    #[inline]
    fn get<'r>(
        reader: &'r mut LockFreeReader<'_, E>,
        shared: &Shared<E>,
        name: &str,
    ) -> Result<Template<'r, E>, GetError<E::Error>> {
        let backend = reader.backend;
        if shared.reload_due() {
            backend.reload_stale(shared);
        }
        // Hit path: one atomic load re-validates the thread's snapshot, then a hash lookup.
        // No lock, no reference count: the template is borrowed from the reader's snapshot.
        let state = reader.state();
        if let Some(slot) = state.map.get(name) {
            return slot_result(slot);
        }
        backend.miss(shared, name).map(Template::owned)
    }

    fn reset(&self, shared: &Shared<E>) {
        self.cell.store(Arc::new(shared.new_state()));
        self.written();
    }

    fn invalidate(&self, shared: &Shared<E>, name: &str) -> bool {
        self.remove(shared, name, None)
    }

    fn generation(&self) -> u64 {
        self.cell.load().generation
    }

    fn cached_count(&self) -> usize {
        self.cell.load().map.len()
    }
}

#[cfg(all(test, unlocked_loom))]
mod loom_model {
    use super::*;
    use crate::sync::AtomicUsize;
    use crate::template::RenderFailure;
    use crate::template::loader::Stamp;
    use std::path::PathBuf;

    struct Dummy;

    impl Engine for Dummy {
        type Generation = ();
        type Compiled = u64;
        type Error = std::fmt::Error;
        type RenderError = std::fmt::Error;
        fn new_generation(&self) {}
        fn compile(&self, _: &(), _: &str, _: String) -> Result<u64, std::fmt::Error> {
            Ok(0)
        }
        fn render<C: serde::Serialize + ?Sized>(
            &self,
            _: &(),
            _: &str,
            _: &u64,
            _: &C,
        ) -> Result<String, RenderFailure<std::fmt::Error>> {
            Ok(String::new())
        }
    }

    fn loaded(state: &State<Dummy>, value: u64) -> Arc<Loaded<Dummy>> {
        Arc::new(Loaded {
            name: "x".into(),
            compiled: value,
            path: PathBuf::new(),
            stamp: Stamp::ZERO,
            generation: state.generation,
            engine_gen: Arc::clone(&state.engine_gen),
        })
    }

    fn builder() -> loom::model::Builder {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b
    }

    fn setup() -> (Arc<Shared<Dummy>>, Arc<LockFreeBackend<Dummy>>) {
        let shared = Arc::new(Shared::new(
            Dummy,
            FileSystemLoader::new::<[&str; 0], &str>([]),
            None,
        ));
        let backend = Arc::new(LockFreeBackend::new(&shared));
        (shared, backend)
    }

    /// Two concurrent misses of one name: one load, both get its result, and it is published.
    #[test]
    fn concurrent_misses_load_once() {
        builder().check(|| {
            let (_shared, backend) = setup();
            let loads = Arc::new(AtomicUsize::new(0));
            let miss = {
                let (backend, loads) = (Arc::clone(&backend), Arc::clone(&loads));
                move || {
                    backend
                        .single_flight("x", |state| {
                            // Relaxed: a counter checked after the threads are joined.
                            let n = loads.fetch_add(1, Ordering::Relaxed);
                            Ok(loaded(state, n as u64 + 1))
                        })
                        .unwrap()
                }
            };
            let other = loom::thread::spawn(miss.clone());
            let a = miss();
            let b = other.join().unwrap();
            assert_eq!(loads.load(Ordering::Relaxed), 1, "loaded twice");
            assert!(Arc::ptr_eq(&a, &b), "callers got different results");
            match backend.cell.load_full().map.get("x") {
                Some(Slot::Found(l)) => assert!(Arc::ptr_eq(l, &a)),
                _ => panic!("result not published"),
            }
        });
    }

    /// A miss racing a reset never publishes into the new generation.
    #[test]
    fn miss_racing_reset_stays_in_its_generation() {
        builder().check(|| {
            let (shared, backend) = setup();
            let resetter = {
                let (backend, shared) = (Arc::clone(&backend), Arc::clone(&shared));
                loom::thread::spawn(move || backend.reset(&shared))
            };
            let got = backend
                .single_flight("x", |state| Ok(loaded(state, 1)))
                .unwrap();
            resetter.join().unwrap();
            let state = backend.cell.load_full();
            assert_eq!(state.generation, 1);
            for slot in state.map.values() {
                if let Slot::Found(l) = slot {
                    assert_eq!(l.generation, state.generation, "stale publish");
                }
            }
            // A later miss loads afresh in the new generation.
            let again = backend
                .single_flight("x", |state| Ok(loaded(state, 2)))
                .unwrap();
            assert_eq!(again.generation, 1);
            assert!(got.generation <= 1);
        });
    }
}
