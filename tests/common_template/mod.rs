//! Helpers shared by the template tests: temporary template directories and an engine wrapper
//! that counts compiles per (generation, name).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use unlocked::template::{
    Engine, MiniJinja, MiniJinjaGeneration, MiniJinjaTemplate, RenderFailure,
};

/// Writes `files` (name, contents) under `dir`, creating folders.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A temporary directory holding `files`.
pub fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), files);
    dir
}

/// MiniJinja, counting compiles per (generation id, name).
#[derive(Default)]
pub struct Counting {
    inner: MiniJinja,
    next_generation: AtomicU64,
    compiles: Mutex<HashMap<(u64, String), u64>>,
}

pub struct CountingGeneration {
    id: u64,
    inner: MiniJinjaGeneration,
}

impl Counting {
    /// Total compiles of `name`, over every generation.
    pub fn compiles_of(&self, name: &str) -> u64 {
        self.compiles
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, n), _)| n == name)
            .map(|(_, c)| c)
            .sum()
    }

    /// Total compiles.
    pub fn total(&self) -> u64 {
        self.compiles.lock().unwrap().values().sum()
    }

    /// Every (generation, name) -> compile count.
    pub fn table(&self) -> HashMap<(u64, String), u64> {
        self.compiles.lock().unwrap().clone()
    }
}

impl Engine for Counting {
    type Generation = CountingGeneration;
    type Compiled = MiniJinjaTemplate;
    type Error = minijinja::Error;
    type RenderError = minijinja::Error;

    fn new_generation(&self) -> CountingGeneration {
        CountingGeneration {
            id: self.next_generation.fetch_add(1, Ordering::Relaxed),
            inner: self.inner.new_generation(),
        }
    }

    fn compile(
        &self,
        generation: &CountingGeneration,
        name: &str,
        source: String,
    ) -> Result<MiniJinjaTemplate, minijinja::Error> {
        *self
            .compiles
            .lock()
            .unwrap()
            .entry((generation.id, name.to_owned()))
            .or_default() += 1;
        self.inner.compile(&generation.inner, name, source)
    }

    fn forget(&self, generation: &CountingGeneration, name: &str, compiled: &MiniJinjaTemplate) {
        self.inner.forget(&generation.inner, name, compiled);
    }

    fn render<C: Serialize + ?Sized>(
        &self,
        generation: &CountingGeneration,
        name: &str,
        compiled: &MiniJinjaTemplate,
        context: &C,
    ) -> Result<String, RenderFailure<minijinja::Error>> {
        self.inner
            .render(&generation.inner, name, compiled, context)
    }
}
