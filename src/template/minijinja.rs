//! The minijinja adapter.
//!
//! minijinja keeps templates added with `add_template(&'source str, &'source str)` in a map it
//! reads without a lock, and resolves `extends` and `include` through that same map; owned
//! templates and loader-loaded ones sit behind a `Mutex` taken on every lookup. So each cache
//! generation owns an append-only arena of sources and an `Environment<'arena>` that borrows
//! from it (a self-referential pair built with `self_cell`, no `unsafe` here). Adding a
//! template clones the current environment — which shares every compiled template by `Arc`,
//! so nothing is recompiled — adds the one new template, and publishes the clone.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use minijinja::{Environment, ErrorKind, Value};
use serde::Serialize;

use super::engine::{Engine, RenderFailure};
use crate::sync::{Arc, Mutex, Snapshot};

/// The [minijinja](https://docs.rs/minijinja) engine, for [`TemplateCache`](super::TemplateCache).
///
/// Filters, tests, globals and settings come from a base `Environment<'static>` (without
/// templates) given to [`with_environment`](Self::with_environment); each cache generation
/// starts from a clone of it.
///
/// ```
/// use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("base.html"), "<h1>{% block title %}{% endblock %}</h1>")?;
/// std::fs::write(
///     dir.path().join("page.html"),
///     r#"{% extends "base.html" %}{% block title %}Hi {{ who }}{% endblock %}"#,
/// )?;
/// let cache: TemplateCache<MiniJinja> =
///     TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
/// let mut reader = cache.reader();
/// let html = reader.render("page.html", &serde_json::json!({ "who": "there" }))?;
/// assert_eq!(html, "<h1>Hi there</h1>");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MiniJinja {
    base: Environment<'static>,
}

impl MiniJinja {
    /// An engine with minijinja's default environment (built-in filters and tests).
    pub fn new() -> Self {
        Self::with_environment(Environment::new())
    }

    /// An engine whose generations start from `base` (configure filters, globals, syntax,
    /// undefined behaviour there). Templates already in `base` are dropped, and a loader set
    /// on `base` is replaced: templates come from the cache's loader (the engine installs a
    /// loader of its own that only records which names a render asked for).
    pub fn with_environment(mut base: Environment<'static>) -> Self {
        base.clear_templates();
        base.set_loader(record_request);
        Self { base }
    }
}

impl Default for MiniJinja {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MiniJinja {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiniJinja").finish_non_exhaustive()
    }
}

/// The sources of one generation. Append-only: a source stays at its address until the
/// generation is dropped, so the environment may borrow it.
struct Arena(boxcar::Vec<Box<str>>);

impl Arena {
    fn alloc(&self, s: &str) -> &str {
        let i = self.0.push(s.into());
        &self.0[i]
    }
}

/// One published version of a generation's environment.
struct Version<'a> {
    env: Environment<'a>,
    /// Which compile of each name `env` holds (see [`Engine::forget`]).
    ids: HashMap<&'a str, u64>,
}

struct Envs<'a> {
    /// Read without a lock by renders; replaced whole by writers.
    current: Snapshot<Version<'a>>,
    /// Serialises writers of `current` only (clone, add one template, publish); never taken
    /// by a render or a cache hit.
    writer: Mutex<()>,
}

self_cell::self_cell!(
    struct Cell {
        owner: Arena,
        #[not_covariant]
        dependent: Envs,
    }
);

/// The per-generation state of [`MiniJinja`]: an arena of sources and the environment that
/// borrows them.
pub struct MiniJinjaGeneration {
    cell: Cell,
}

impl fmt::Debug for MiniJinjaGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiniJinjaGeneration")
            .finish_non_exhaustive()
    }
}

/// A template compiled by [`MiniJinja`]: a ticket to its version in the generation's
/// environment (the compiled code itself lives there, shared by every later version).
#[derive(Debug)]
pub struct MiniJinjaTemplate {
    id: u64,
    /// The size the next render's output buffer starts at: the longest recent output of this
    /// template (at most [`OUTPUT_HINT_MAX`]). It rises to any longer output and falls to an
    /// output under half of it (less [`SHRINK_SLACK`]), so it is written only when the output
    /// size changes that much, not on every render of a hot template. minijinja's own guess is twice the
    /// template's literal text, which misses everything a template `extends` and `include`s,
    /// so a page grew through several `realloc`s, each a copy and (on glibc) a trip through
    /// the arena lock. Relaxed: a size guess publishes no data; a stale one only costs a
    /// `realloc` or a [`shrink_to_fit`](String::shrink_to_fit).
    output_hint: AtomicUsize,
}

/// The largest starting capacity a render's output buffer gets from [`MiniJinjaTemplate`]'s
/// hint. One huge render must not make every later render of the template allocate that much;
/// past this size, doubling growth costs little next to the rendering itself.
const OUTPUT_HINT_MAX: usize = 64 * 1024;

/// From this output size on, a render writes into a buffer of the hinted size (through
/// minijinja's `render_captured_to`, which keeps the render's state in one more allocation);
/// below it, minijinja's plain `render` is cheaper. Callgrind (`ci/template-instructions.sh`):
/// the sized path costs about 550 instructions more on a 25-byte page and saves about 700 on a
/// 1 KiB page that `extends` a base, before counting what a `realloc` costs under contention.
const PRESIZE_FROM: usize = 256;

/// A rendered page whose buffer exceeds twice its length by more than this is shrunk before
/// it is returned (one copy, only on the render that lowers the hint).
const SHRINK_SLACK: usize = 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Engine for MiniJinja {
    type Generation = MiniJinjaGeneration;
    type Compiled = MiniJinjaTemplate;
    type Error = minijinja::Error;
    type RenderError = minijinja::Error;

    fn new_generation(&self) -> MiniJinjaGeneration {
        let base = self.base.clone();
        MiniJinjaGeneration {
            cell: Cell::new(Arena(boxcar::Vec::new()), |_| Envs {
                current: Snapshot::new(Version {
                    env: base,
                    ids: HashMap::new(),
                }),
                writer: Mutex::new(()),
            }),
        }
    }

    fn compile(
        &self,
        generation: &MiniJinjaGeneration,
        name: &str,
        source: String,
    ) -> Result<MiniJinjaTemplate, minijinja::Error> {
        generation.cell.with_dependent(|arena, envs| {
            let _writer = envs.writer.lock();
            let name = arena.alloc(name);
            let source = arena.alloc(&source);
            let current = envs.current.load_full();
            // Shares every compiled template with `current` (by `Arc`); compiles only `name`.
            let mut env = current.env.clone();
            env.add_template(name, source)?;
            // Relaxed: a unique ticket is all that is needed; no data is published through it.
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            let mut ids = current.ids.clone();
            ids.insert(name, id);
            envs.current.store(Arc::new(Version { env, ids }));
            Ok(MiniJinjaTemplate {
                id,
                output_hint: AtomicUsize::new(0),
            })
        })
    }

    fn forget(&self, generation: &MiniJinjaGeneration, name: &str, compiled: &MiniJinjaTemplate) {
        generation.cell.with_dependent(|_, envs| {
            let _writer = envs.writer.lock();
            let current = envs.current.load_full();
            if current.ids.get(name) != Some(&compiled.id) {
                return; // already replaced by a newer compile
            }
            let mut env = current.env.clone();
            env.remove_template(name);
            let mut ids = current.ids.clone();
            ids.remove(name);
            envs.current.store(Arc::new(Version { env, ids }));
        });
    }

    fn render<C: Serialize + ?Sized>(
        &self,
        generation: &MiniJinjaGeneration,
        name: &str,
        compiled: &MiniJinjaTemplate,
        context: &C,
    ) -> Result<String, RenderFailure<minijinja::Error>> {
        generation.cell.with_dependent(|_, envs| {
            let version = envs.current.load();
            let recording = Recording::start();
            let hint = compiled.output_hint.load(Ordering::Relaxed);
            let ctx = Value::from(minijinja::value::Serde(context));
            let result = version.env.get_template(name).and_then(|t| {
                if hint < PRESIZE_FROM {
                    // Small output: minijinja's own guess is close enough, and its plain render
                    // skips the captured state the sized path pays for.
                    return t.render(ctx);
                }
                let mut out = Vec::with_capacity(hint);
                t.render_captured_to(ctx, &mut out)?;
                // minijinja writes only `str`s, so this never fails; lossy rather than a panic.
                Ok(String::from_utf8(out)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
            });
            let requested = recording.finish();
            result
                .map(|mut out| {
                    let len = out.len();
                    if len > hint && hint < OUTPUT_HINT_MAX {
                        // (At the cap, no write at all: a read-modify-write would take the
                        // line from the other cores on every render of a huge page.)
                        compiled
                            .output_hint
                            .fetch_max(len.min(OUTPUT_HINT_MAX), Ordering::Relaxed);
                    } else if 2 * len + SHRINK_SLACK < hint {
                        // Much shorter than the hint: lower it, so the shrink below happens
                        // once, not on every render of a template whose pages got smaller.
                        compiled.output_hint.store(len, Ordering::Relaxed);
                    }
                    // The caller may hold the page a while (a response queued for a slow
                    // client): do not hand out a buffer mostly empty because of a larger
                    // earlier render. (The plain path's buffer is minijinja's own sizing, as
                    // before the hint existed.)
                    if hint >= PRESIZE_FROM && out.capacity() > 2 * len + SHRINK_SLACK {
                        out.shrink_to_fit();
                    }
                    out
                })
                .map_err(|e| {
                    if !requested.is_empty() && not_found_in_chain(&e) {
                        RenderFailure::MissingDependency(requested)
                    } else {
                        RenderFailure::Failed(e)
                    }
                })
        })
    }
}

thread_local! {
    /// The names minijinja asked for and did not have, during the render running on this
    /// thread (`None` outside a render).
    static REQUESTED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// The loader installed in every generation's environment. minijinja calls it exactly when a
/// lookup (`extends`, `include`, `import`, `get_template`) misses its own templates, with the
/// final name (after path joining): recording that name is how the cache learns a render's
/// missing dependencies, in lookup order, without reading error messages (any character the
/// file-system loader accepts, quotes included, goes through unchanged). It never supplies a
/// source: templates enter the environment only through [`Engine::compile`].
fn record_request(name: &str) -> Result<Option<String>, minijinja::Error> {
    REQUESTED.with(|r| {
        if let Some(names) = r.borrow_mut().as_mut() {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    });
    Ok(None)
}

/// Records the requests of one render on this thread; restores the outer recording (a render
/// nested in a filter or function) when dropped, also on unwind.
struct Recording {
    outer: Option<Vec<String>>,
}

impl Recording {
    fn start() -> Self {
        Self {
            outer: REQUESTED.with(|r| r.replace(Some(Vec::new()))),
        }
    }

    /// The names requested and not found since `start`.
    fn finish(mut self) -> Vec<String> {
        let outer = self.outer.take();
        REQUESTED.with(|r| r.replace(outer)).unwrap_or_default()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(outer) = self.outer.take() {
            REQUESTED.with(|r| r.replace(Some(outer)));
        }
    }
}

/// Whether `e` or an error in its chain (an include inside an included template arrives
/// wrapped in `BadInclude`) says a template was not found. Only the kind is read.
fn not_found_in_chain(e: &minijinja::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<minijinja::Error>()
            .is_some_and(|mj| mj.kind() == ErrorKind::TemplateNotFound)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(all(test, not(unlocked_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_output_hint_follows_the_longest_render_and_is_capped() {
        let engine = MiniJinja::new();
        let generation = engine.new_generation();
        let source = "{% for i in range(n) %}é{{ i }},{% endfor %}";
        let compiled = engine
            .compile(&generation, "t.html", source.to_owned())
            .expect("compiles");
        let render = |n: u64| {
            engine
                .render(
                    &generation,
                    "t.html",
                    &compiled,
                    &serde_json::json!({ "n": n }),
                )
                .expect("renders")
        };
        let expected = |n: u64| (0..n).map(|i| format!("é{i},")).collect::<String>();
        let hint = || compiled.output_hint.load(Ordering::Relaxed);

        // Small output: the plain path, and the hint records its length.
        assert_eq!(render(3), expected(3));
        assert_eq!(hint(), expected(3).len());
        // Past `PRESIZE_FROM`: recorded, then rendered through the sized buffer, unchanged.
        assert!(expected(200).len() >= PRESIZE_FROM);
        assert_eq!(render(200), expected(200));
        assert_eq!(hint(), expected(200).len());
        let again = render(200);
        assert_eq!(again, expected(200));
        assert!(again.capacity() >= again.len());
        // A somewhat shorter render leaves the hint alone (no shared write)...
        assert_eq!(render(150), expected(150));
        assert_eq!(hint(), expected(200).len());
        // ...a much shorter one lowers it, and its page does not keep the big buffer.
        let small = render(5);
        assert_eq!(small, expected(5));
        assert_eq!(hint(), expected(5).len());
        assert!(small.capacity() <= 2 * small.len() + SHRINK_SLACK);
        if cfg!(miri) {
            return; // the 64 KiB render below takes minutes under miri
        }
        // One huge render caps the hint instead of making every later render allocate that.
        let huge = expected(20_000);
        assert!(huge.len() > OUTPUT_HINT_MAX);
        assert_eq!(render(20_000), huge);
        assert_eq!(hint(), OUTPUT_HINT_MAX);
        assert_eq!(render(20_000), huge);
        // After the huge render, a 1 KiB one gets a page sized to itself, not 64 KiB.
        let after = render(200);
        assert_eq!(after, expected(200));
        assert!(after.capacity() <= 2 * after.len() + SHRINK_SLACK);
        assert_eq!(hint(), expected(200).len());
    }
}
