//! The minijinja adapter.
//!
//! minijinja keeps templates added with `add_template(&'source str, &'source str)` in a map it
//! reads without a lock, and resolves `extends` and `include` through that same map; owned
//! templates and loader-loaded ones sit behind a `Mutex` taken on every lookup. So each cache
//! generation owns an append-only arena of sources and an `Environment<'arena>` that borrows
//! from it (a self-referential pair built with `self_cell`, no `unsafe` here). Adding a
//! template clones the current environment — which shares every compiled template by `Arc`,
//! so nothing is recompiled — adds the one new template, and publishes the clone.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// undefined behaviour there). Templates already in `base` are dropped: templates come
    /// from the cache's loader.
    pub fn with_environment(mut base: Environment<'static>) -> Self {
        base.clear_templates();
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
}

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
            Ok(MiniJinjaTemplate { id })
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
        _compiled: &MiniJinjaTemplate,
        context: &C,
    ) -> Result<String, RenderFailure<minijinja::Error>> {
        generation.cell.with_dependent(|_, envs| {
            let version = envs.current.load();
            let result = version
                .env
                .get_template(name)
                .and_then(|t| t.render(Value::from(minijinja::value::Serde(context))));
            result.map_err(|e| match missing_names(&e) {
                Some(names) => RenderFailure::MissingDependency(names),
                None => RenderFailure::Failed(e),
            })
        })
    }
}

/// The names minijinja could not find, from the innermost `TemplateNotFound` in `e`'s chain
/// (an include inside an included template arrives wrapped in `BadInclude`). minijinja has no
/// structured field for the name, so the message is parsed: `template "NAME" does not exist`
/// (extends, import), `tried to include non-existing template 'NAME'` and `tried to include one
/// of multiple templates, none of which existed [...]` (include). Names holding quotes or
/// backslashes are refused by the loader anyway, so only plain quoted names are taken.
fn missing_names(e: &minijinja::Error) -> Option<Vec<String>> {
    let mut found = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(mj) = err.downcast_ref::<minijinja::Error>() {
            if mj.kind() == ErrorKind::TemplateNotFound {
                if let Some(names) = mj.detail().and_then(parse_missing) {
                    found = Some(names);
                }
            }
        }
        cur = err.source();
    }
    found
}

fn parse_missing(detail: &str) -> Option<Vec<String>> {
    let quoted = if let Some(rest) = detail.strip_prefix("template ") {
        rest.strip_suffix(" does not exist")?
    } else if let Some(rest) = detail.strip_prefix("tried to include non-existing template ") {
        rest
    } else {
        detail.strip_prefix("tried to include one of multiple templates, none of which existed ")?
    };
    let mut names = Vec::new();
    let mut rest = quoted;
    while let Some(open) = rest.find(['"', '\'']) {
        let quote = rest[open..].chars().next()?;
        let body = &rest[open + 1..];
        let close = body.find(quote)?;
        let name = &body[..close];
        if !name.contains(['\\', '"', '\'']) {
            names.push(name.to_owned());
        }
        rest = &body[close + 1..];
    }
    (!names.is_empty()).then_some(names)
}
