//! Cache internals shared by both back ends: the engine, loader and clock ([`Shared`]), the
//! entries of one generation ([`State`]), and what a lookup returns.

// Public items of a private module (see `backend`).
#![allow(unreachable_pub)]

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::engine::Engine;
use super::error::{GetError, LoadError};
use super::loader::{FileSystemLoader, Stamp};
use crate::sync::{Arc, AtomicU64, Ordering};

pub(crate) type Hasher = foldhash::fast::FixedState;

pub(crate) fn hasher() -> Hasher {
    foldhash::fast::FixedState::with_seed(0x7e3a_11ce)
}

/// The outcome of loading and compiling one name.
pub(crate) type LoadResult<E> = Result<Arc<Loaded<E>>, GetError<<E as Engine>::Error>>;

/// Entries to drop on autoreload: the name, and the compiled template (`None` for a miss).
type StaleEntries<E> = Vec<(Box<str>, Option<Arc<Loaded<E>>>)>;

/// What every back end shares: engine, loader, autoreload clock, generation counter.
pub struct Shared<E: Engine> {
    pub(crate) engine: E,
    pub(crate) loader: FileSystemLoader,
    autoreload: Option<Duration>,
    epoch: Instant,
    next_check_ms: AtomicU64,
    generations: AtomicU64,
}

impl<E: Engine> std::fmt::Debug for Shared<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("loader", &self.loader)
            .field("autoreload", &self.autoreload)
            .finish_non_exhaustive()
    }
}

impl<E: Engine> Shared<E> {
    pub(crate) fn new(engine: E, loader: FileSystemLoader, autoreload: Option<Duration>) -> Self {
        Self {
            engine,
            loader,
            autoreload,
            epoch: Instant::now(),
            next_check_ms: AtomicU64::new(0),
            generations: AtomicU64::new(0),
        }
    }

    /// A fresh, empty state with a new generation number.
    pub(crate) fn new_state(&self) -> State<E> {
        // Relaxed: the number only has to be unique; it is published inside the state.
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        State {
            generation,
            engine_gen: Arc::new(self.engine.new_generation()),
            map: HashMap::with_hasher(hasher()),
        }
    }

    /// Whether this caller should check the cached files now (autoreload): at most one caller
    /// per interval wins.
    #[inline]
    pub(crate) fn reload_due(&self) -> bool {
        let Some(every) = self.autoreload else {
            return false;
        };
        let now = self.epoch.elapsed().as_millis() as u64;
        // Relaxed: the clock value only elects one checker per interval; what the checker
        // reads (the snapshot, the files) is synchronised by the snapshot cell itself.
        let due = self.next_check_ms.load(Ordering::Relaxed);
        now >= due
            && self
                .next_check_ms
                .compare_exchange(
                    due,
                    now + every.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Loads and compiles `name` for `state`'s generation. Takes no lock.
    pub(crate) fn load_compile(
        &self,
        state: &State<E>,
        name: &str,
    ) -> Result<Arc<Loaded<E>>, GetError<E::Error>> {
        let source = self.loader.load(name)?;
        let compiled = self
            .engine
            .compile(&state.engine_gen, name, source.text)
            .map_err(|e| GetError::Compile {
                name: name.to_owned(),
                source: std::sync::Arc::new(e),
            })?;
        Ok(Arc::new(Loaded {
            name: name.into(),
            compiled,
            path: source.path,
            stamp: source.stamp,
            generation: state.generation,
            engine_gen: Arc::clone(&state.engine_gen),
        }))
    }
}

/// A compiled template with where it came from.
pub struct Loaded<E: Engine> {
    pub(crate) name: Box<str>,
    pub(crate) compiled: E::Compiled,
    pub(crate) path: PathBuf,
    pub(crate) stamp: Stamp,
    pub(crate) generation: u64,
    pub(crate) engine_gen: Arc<E::Generation>,
}

/// A cache entry: a compiled template, or a cached miss.
pub enum Slot<E: Engine> {
    /// Compiled.
    Found(Arc<Loaded<E>>),
    /// The loader found nothing (negative caching). Boxed behind an `Arc` so a map bucket
    /// stays small (name + tag + pointer) on the hit path.
    Missing(Arc<LoadError>),
}

impl<E: Engine> Clone for Slot<E> {
    fn clone(&self) -> Self {
        match self {
            Slot::Found(l) => Slot::Found(Arc::clone(l)),
            Slot::Missing(e) => Slot::Missing(Arc::clone(e)),
        }
    }
}

/// One generation's entries.
pub struct State<E: Engine> {
    pub(crate) generation: u64,
    pub(crate) engine_gen: Arc<E::Generation>,
    pub(crate) map: HashMap<Box<str>, Slot<E>, Hasher>,
}

impl<E: Engine> State<E> {
    pub(crate) fn with_map(&self, map: HashMap<Box<str>, Slot<E>, Hasher>) -> Self {
        Self {
            generation: self.generation,
            engine_gen: Arc::clone(&self.engine_gen),
            map,
        }
    }

    /// Names whose file changed or vanished (autoreload), and every cached miss.
    pub(crate) fn stale(&self) -> StaleEntries<E> {
        self.map
            .iter()
            .filter_map(|(name, slot)| match slot {
                Slot::Found(l) if Stamp::of(&l.path) != Some(l.stamp) => {
                    Some((name.clone(), Some(Arc::clone(l))))
                }
                Slot::Found(_) => None,
                Slot::Missing(_) => Some((name.clone(), None)),
            })
            .collect()
    }
}

pub(crate) fn slot_result<'r, E: Engine>(
    slot: &'r Slot<E>,
) -> Result<Template<'r, E>, GetError<E::Error>> {
    match slot {
        Slot::Found(l) => Ok(Template::borrowed(l)),
        Slot::Missing(e) => Err(GetError::Load(LoadError::clone(e))),
    }
}

/// The slot to publish for a load result, if it is cacheable.
pub(crate) fn cacheable<E: Engine>(
    result: &Result<Arc<Loaded<E>>, GetError<E::Error>>,
) -> Option<Slot<E>> {
    match result {
        Ok(l) => Some(Slot::Found(Arc::clone(l))),
        Err(GetError::Load(e)) if e.is_not_found() => Some(Slot::Missing(Arc::new(e.clone()))),
        Err(_) => None,
    }
}

/// A compiled template found by [`Reader::get`](super::Reader::get): borrowed from the reader on a lock-free hit,
/// shared by `Arc` otherwise.
pub struct Template<'r, E: Engine> {
    inner: TemplateRef<'r, E>,
}

enum TemplateRef<'r, E: Engine> {
    Borrowed(&'r Loaded<E>),
    Owned(Arc<Loaded<E>>),
}

impl<'r, E: Engine> Template<'r, E> {
    #[inline]
    pub(crate) fn borrowed(loaded: &'r Arc<Loaded<E>>) -> Self {
        Self {
            inner: TemplateRef::Borrowed(loaded),
        }
    }

    pub(crate) fn owned(loaded: Arc<Loaded<E>>) -> Self {
        Self {
            inner: TemplateRef::Owned(loaded),
        }
    }

    #[inline]
    pub(crate) fn loaded(&self) -> &Loaded<E> {
        match &self.inner {
            TemplateRef::Borrowed(l) => l,
            TemplateRef::Owned(l) => l,
        }
    }

    /// The template's name.
    pub fn name(&self) -> &str {
        &self.loaded().name
    }

    /// The engine's compiled template.
    #[inline]
    pub fn compiled(&self) -> &E::Compiled {
        &self.loaded().compiled
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.loaded().path
    }

    /// The generation it was compiled in.
    pub fn generation(&self) -> u64 {
        self.loaded().generation
    }
}

impl<E: Engine> fmt::Debug for Template<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name())
            .field("path", &self.path())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}
