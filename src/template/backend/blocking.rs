//! The blocking back end: one map under the template loader's function-level lock.

#![allow(unreachable_pub)]

use super::Backend;
use crate::lock::Guarded;
use crate::sync::Arc;
use crate::template::cache::{Shared, Slot, State, Template, cacheable};
use crate::template::engine::Engine;
use crate::template::error::{GetError, LoadError};
use crate::template::loader::FileSystemLoader;

fn blocking_lock() -> &'static crate::lock::Lock {
    crate::function_lock!()
}

/// One map under the template loader's function-level lock; loading and compiling happen
/// under that lock (the Django threading spec's proposal).
pub struct BlockingBackend<E: Engine> {
    state: Guarded<State<E>>,
}

impl<E: Engine> std::fmt::Debug for BlockingBackend<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingBackend")
            .field("state", &self.state)
            .finish()
    }
}

impl<E: Engine> BlockingBackend<E> {
    fn reload_stale(&self, shared: &Shared<E>) {
        let mut state = self.state.lock();
        for (name, loaded) in state.stale() {
            state.map.remove(&name);
            if let Some(l) = loaded {
                shared.engine.forget(&l.engine_gen, &name, &l.compiled);
            }
        }
    }
}

impl<E: Engine> Backend<E> for BlockingBackend<E> {
    type Reader<'a> = &'a BlockingBackend<E>;

    fn new(shared: &Shared<E>) -> Self {
        Self {
            state: Guarded::new(blocking_lock(), shared.new_state()),
        }
    }

    fn reader(&self) -> &BlockingBackend<E> {
        self
    }

    fn with_local_reader<R>(&self, f: impl FnOnce(&mut &BlockingBackend<E>) -> R) -> R {
        f(&mut &*self)
    }

    fn get<'r>(
        reader: &'r mut &BlockingBackend<E>,
        shared: &Shared<E>,
        name: &str,
    ) -> Result<Template<'r, E>, GetError<E::Error>> {
        let backend = *reader;
        if shared.reload_due() {
            backend.reload_stale(shared);
        }
        let mut state = backend.state.lock();
        if let Some(slot) = state.map.get(name) {
            return match slot {
                Slot::Found(l) => Ok(Template::owned(Arc::clone(l))),
                Slot::Missing(e) => Err(GetError::Load(LoadError::clone(e))),
            };
        }
        FileSystemLoader::check_name(name)?;
        // Loaded and compiled under the lock: concurrent misses wait for this one.
        let result = shared.load_compile(&state, name);
        if let Some(slot) = cacheable(&result) {
            state.map.insert(name.into(), slot);
        }
        result.map(Template::owned)
    }

    fn reset(&self, shared: &Shared<E>) {
        let fresh = shared.new_state();
        let old = std::mem::replace(&mut *self.state.lock(), fresh);
        drop(old); // outside the lock
    }

    fn invalidate(&self, shared: &Shared<E>, name: &str) -> bool {
        let mut state = self.state.lock();
        match state.map.remove(name) {
            Some(Slot::Found(l)) => {
                shared.engine.forget(&l.engine_gen, name, &l.compiled);
                true
            }
            Some(Slot::Missing(_)) => true,
            None => false,
        }
    }

    fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    fn cached_count(&self) -> usize {
        self.state.lock().map.len()
    }
}
