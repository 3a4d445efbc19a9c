//! The engine interface: what a template engine supplies to the cache.

use serde::Serialize;

/// A template engine the cache can drive: it compiles sources and renders compiled
/// templates. The cache is engine-agnostic; [`MiniJinja`](super::MiniJinja) is the adapter
/// shipped with the crate, and another engine (tera, ...) needs only this trait.
///
/// An engine may keep state per cache *generation* (everything compiled since the last
/// [`reset`](super::TemplateCache::reset)): minijinja keeps one environment per generation
/// in which templates find what they extend and include. Engines without such state use `()`.
pub trait Engine: Send + Sync + 'static {
    /// State shared by every template compiled in one generation.
    type Generation: Send + Sync + 'static;
    /// One compiled template: what a cache hit hands out.
    type Compiled: Send + Sync + 'static;
    /// Why a source does not compile.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Why a render failed.
    type RenderError: std::error::Error + Send + Sync + 'static;

    /// Fresh state for a new generation.
    fn new_generation(&self) -> Self::Generation;

    /// Compiles `source`, the template called `name`, in `generation`. The cache calls this
    /// once per name per generation (plus once after each invalidation of that name), never
    /// while holding a lock that readers take.
    fn compile(
        &self,
        generation: &Self::Generation,
        name: &str,
        source: String,
    ) -> Result<Self::Compiled, Self::Error>;

    /// `name` was dropped from the cache (invalidated or reloaded): forget `compiled` if it is
    /// still the current version of `name` in `generation`. The default does nothing.
    fn forget(&self, generation: &Self::Generation, name: &str, compiled: &Self::Compiled) {
        let _ = (generation, name, compiled);
    }

    /// Renders `compiled` (the template called `name`) with `context`.
    ///
    /// If it needs a template it has not been given yet (through `extends`, `include`,
    /// `import`), return [`RenderFailure::MissingDependency`]: the cache loads and compiles the
    /// first of those names that exists, in the same generation, then calls `render` again.
    fn render<C: Serialize + ?Sized>(
        &self,
        generation: &Self::Generation,
        name: &str,
        compiled: &Self::Compiled,
        context: &C,
    ) -> Result<String, RenderFailure<Self::RenderError>>;
}

/// Why [`Engine::render`] did not produce output.
#[derive(Debug)]
#[non_exhaustive]
pub enum RenderFailure<R> {
    /// The template needs one of these other templates (the first that exists, in this
    /// order: `{% include ["a", "b"] %}`), which the engine has not been given yet.
    MissingDependency(Vec<String>),
    /// Rendering failed.
    Failed(R),
}
