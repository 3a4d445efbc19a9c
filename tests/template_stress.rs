//! Stress: readers render continuously while another thread resets, invalidates and edits the
//! template files. Every render must be a valid output, never an error, and compiles are
//! counted per (generation, name).

#[macro_use]
mod common;

mod common_template;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common_template::{Counting, write_files};
use rand::{Rng, SeedableRng, rngs::StdRng};
use unlocked::Strategy;
use unlocked::template::{FileSystemLoader, TemplateCache};

const PAGES: usize = 6;
const READERS: usize = 3;

fn page_name(i: usize) -> String {
    format!("pages/p{i}.html")
}

fn base_source(v: u64) -> String {
    format!("B{v}[{{% block body %}}{{% endblock %}}]")
}

fn part_source(v: u64) -> String {
    format!("I{v}")
}

fn page_source(i: usize, v: u64) -> String {
    format!(
        r#"{{% extends "base.html" %}}{{% block body %}}P{i}.{v}:{{% include "part.html" %}}{{% endblock %}}"#
    )
}

/// Replaces a file atomically (write a temporary file, rename it over), as deploy tools and
/// most editors do, so a reader never sees a half-written template.
fn replace(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".tmp-{}", name.replace('/', "_")));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn fail(out: &str, page: usize) -> ! {
    panic!("invalid render of page {page}: {out:?}")
}

/// Checks `out` is `B{b}[P{i}.{p}:I{c}]` with versions no newer than what was written.
fn check_output(out: &str, page: usize, max: &[AtomicU64; 3]) {
    let rest = out.strip_prefix('B').unwrap_or_else(|| fail(out, page));
    let (b, rest) = rest.split_once('[').unwrap_or_else(|| fail(out, page));
    let rest = rest
        .strip_prefix(&format!("P{page}."))
        .unwrap_or_else(|| fail(out, page));
    let (p, rest) = rest.split_once(":I").unwrap_or_else(|| fail(out, page));
    let c = rest.strip_suffix(']').unwrap_or_else(|| fail(out, page));
    for (v, m) in [b, p, c].into_iter().zip(max) {
        let v: u64 = v.parse().unwrap_or_else(|_| fail(out, page));
        // Acquire: pairs with the writer's Release after the file is in place.
        assert!(
            v <= m.load(Ordering::Acquire),
            "render from the future: {out:?}"
        );
    }
}

fn readers_never_see_errors_while_files_change<S: Strategy>() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("pages")).unwrap();
    write_files(
        root,
        &[
            ("base.html", &base_source(0)),
            ("part.html", &part_source(0)),
        ],
    );
    for i in 0..PAGES {
        write_files(root, &[(&page_name(i), &page_source(i, 0))]);
    }
    // Newest version written of base, pages, part.
    let max: Arc<[AtomicU64; 3]> =
        Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let cache: Arc<TemplateCache<Counting, S>> = Arc::new(TemplateCache::new(
        Counting::default(),
        FileSystemLoader::new([root]),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(READERS + 1));

    let readers: Vec<_> = (0..READERS)
        .map(|t| {
            let (cache, stop, start, max) = (
                Arc::clone(&cache),
                Arc::clone(&stop),
                Arc::clone(&start),
                Arc::clone(&max),
            );
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(t as u64);
                let mut reader = cache.reader();
                let mut renders = 0_u64;
                start.wait();
                while !stop.load(Ordering::Relaxed) {
                    let page = rng.random_range(0..PAGES);
                    match reader.render(&page_name(page), &()) {
                        Ok(out) => check_output(&out, page, &max),
                        Err(e) => panic!("spurious error rendering page {page}: {e}"),
                    }
                    renders += 1;
                }
                renders
            })
        })
        .collect();

    let mut rng = StdRng::seed_from_u64(99);
    let mut resets = 0_u64;
    let mut invalidations: HashMap<String, u64> = HashMap::new();
    let mut version = [0_u64; 3];
    start.wait();
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        match rng.random_range(0..10) {
            0 => {
                cache.reset();
                resets += 1;
            }
            1..=3 => {
                let name = [
                    "base.html",
                    "part.html",
                    &page_name(rng.random_range(0..PAGES)),
                ][rng.random_range(0..3)]
                .to_owned();
                if cache.invalidate(&name) {
                    *invalidations.entry(name).or_default() += 1;
                }
            }
            _ => {
                let which = rng.random_range(0..3);
                version[which] += 1;
                let v = version[which];
                // Publish the version bound first, then the file: a reader never sees a file
                // newer than the bound.
                max[which].store(v, Ordering::Release);
                let (name, text) = match which {
                    0 => ("base.html".to_owned(), base_source(v)),
                    1 => {
                        let i = rng.random_range(0..PAGES);
                        (page_name(i), page_source(i, v))
                    }
                    _ => ("part.html".to_owned(), part_source(v)),
                };
                replace(root, &name, &text);
                if cache.invalidate(&name) {
                    *invalidations.entry(name).or_default() += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_micros(300));
    }
    stop.store(true, Ordering::Relaxed);
    let renders: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(renders > 100, "readers made too little progress: {renders}");
    assert!(resets > 5, "too few resets: {resets}");

    // Each name compiles at most once per generation, plus once per invalidation of it.
    let engine = cache.engine();
    for ((generation, name), count) in engine.table() {
        let allowed = 1 + invalidations.get(&name).copied().unwrap_or(0);
        assert!(
            count <= allowed,
            "{name} compiled {count} times in generation {generation} (allowed {allowed})"
        );
    }
    // After the storm, the cache serves the newest files.
    cache.reset();
    let out = cache.render(&page_name(0), &()).unwrap();
    assert!(out.starts_with(&format!("B{}[", version[0])), "{out}");
    assert!(out.ends_with(&format!(":I{}]", version[2])), "{out}");
}

/// Threads miss the same names at the same moment, over many generations: every name
/// compiles exactly once per generation (single-flight), and every thread gets the output.
fn concurrent_misses_compile_once_per_generation<S: Strategy>() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("t{i}.html")).collect();
    for (i, n) in names.iter().enumerate() {
        write_files(dir.path(), &[(n, &format!("T{i}"))]);
    }
    let cache: Arc<TemplateCache<Counting, S>> = Arc::new(TemplateCache::new(
        Counting::default(),
        FileSystemLoader::new([dir.path()]),
    ));
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, barrier, names) = (Arc::clone(&cache), Arc::clone(&barrier), names.clone());
            std::thread::spawn(move || {
                let mut reader = cache.reader();
                for _ in 0..ROUNDS {
                    if t == 0 {
                        cache.reset();
                    }
                    barrier.wait();
                    for (i, n) in names.iter().enumerate() {
                        assert_eq!(reader.render(n, &()).unwrap(), format!("T{i}"));
                        assert!(reader.get("absent.html").unwrap_err().is_not_found());
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let table = cache.engine().table();
    // Generation 0 was never used (reset before the first round).
    assert_eq!(table.len(), ROUNDS * names.len());
    for ((generation, name), count) in table {
        assert_eq!(
            count, 1,
            "{name} compiled {count} times in generation {generation}"
        );
    }
}

strategy_tests!(
    readers_never_see_errors_while_files_change,
    concurrent_misses_compile_once_per_generation,
);
