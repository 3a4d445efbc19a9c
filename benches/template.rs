//! Template cache: hit lookup and lookup + render, 1/2/4 threads, against minijinja's own
//! `Environment` with `path_loader`, an `RwLock<HashMap>` and an unsynchronised per-thread
//! `HashMap` (the floor), all with the same hasher (foldhash, fixed seed).
//!
//! Run: `cargo bench --bench template -- --warm-up-time 1 --measurement-time 2`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::RwLock;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use minijinja::Environment;
use minijinja::value::{Serde, Value};
use serde::Serialize;
use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};
use unlocked::{Blocking, LockFree, Strategy};

const NAMES: usize = 200;
const THREADS: [usize; 3] = [1, 2, 4];

type Hasher = foldhash::fast::FixedState;

fn hasher() -> Hasher {
    foldhash::fast::FixedState::with_seed(0x7e3a_11ce)
}

#[derive(Serialize)]
struct Ctx<'a> {
    name: &'a str,
    n: u64,
}

/// The shared sweep, with each thread's worker fed a spread of indices.
fn parallel<F, W>(iters: u64, threads: usize, make: &F) -> Duration
where
    F: Fn() -> W + Sync,
    W: FnMut(u64),
{
    common::parallel(threads, iters, |t| {
        let mut work = make();
        move |i: u64| work(i.wrapping_mul(7).wrapping_add(t as u64 * 31))
    })
}

/// Our cache's hit lookup, for either strategy.
fn ours_lookup<S: Strategy>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    cache: &TemplateCache<MiniJinja, S>,
    names: &[String],
    threads: usize,
) {
    g.bench_with_input(
        BenchmarkId::new(S::KIND.name(), threads),
        &threads,
        |b, &t| {
            b.iter_custom(|iters| {
                parallel(iters, t, &|| {
                    let mut reader = cache.reader();
                    move |i| {
                        let name = &names[i as usize % NAMES];
                        black_box(reader.get(name).unwrap().compiled());
                    }
                })
            })
        },
    );
}

/// Our cache's lookup + render, for either strategy.
fn ours_render<S: Strategy>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    cache: &TemplateCache<MiniJinja, S>,
    names: &[String],
    threads: usize,
) {
    g.bench_with_input(
        BenchmarkId::new(S::KIND.name(), threads),
        &threads,
        |b, &t| {
            b.iter_custom(|iters| {
                parallel(iters, t, &|| {
                    let mut reader = cache.reader();
                    move |i| {
                        let name = &names[i as usize % NAMES];
                        let ctx = Ctx {
                            name: "World",
                            n: i,
                        };
                        black_box(reader.render(name, &ctx).unwrap());
                    }
                })
            })
        },
    );
}

fn fixture() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..NAMES).map(|i| format!("pages/t{i}.html")).collect();
    std::fs::create_dir_all(dir.path().join("pages")).unwrap();
    for (i, n) in names.iter().enumerate() {
        std::fs::write(
            dir.path().join(n),
            format!("<p>Hello {{{{ name }}}} #{{{{ n }}}} of {i}</p>"),
        )
        .unwrap();
    }
    (dir, names)
}

fn warm<S: Strategy>(cache: &TemplateCache<MiniJinja, S>, names: &[String]) {
    let mut r = cache.reader();
    for n in names {
        r.render(n, &Ctx { name: "x", n: 0 }).unwrap();
    }
}

fn path_env(dir: &std::path::Path, names: &[String]) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_loader(minijinja::path_loader(dir));
    // Like the cache without autoreload: no `stat` per lookup.
    env.set_auto_reload(false);
    for n in names {
        env.get_template(n).unwrap();
    }
    env
}

fn lookup(c: &mut Criterion) {
    let (dir, names) = fixture();
    let names = &names;
    let lock_free: TemplateCache<MiniJinja, LockFree> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
    let blocking: TemplateCache<MiniJinja, Blocking> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
    warm(&lock_free, names);
    warm(&blocking, names);
    let env = path_env(dir.path(), names);
    let mut map: HashMap<Box<str>, u64, Hasher> = HashMap::with_hasher(hasher());
    for (i, n) in names.iter().enumerate() {
        map.insert(n.as_str().into(), i as u64);
    }
    let rw = RwLock::new(map.clone());

    let mut g = c.benchmark_group("template/lookup");
    // No `Throughput`: with one, criterion plots throughput against the element count
    // (always 1) instead of time against the thread count, and draws no `lines.svg`.
    for threads in THREADS {
        ours_lookup(&mut g, &lock_free, names, threads);
        ours_lookup(&mut g, &blocking, names, threads);
        g.bench_with_input(
            BenchmarkId::new("minijinja-path-loader", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(iters, t, &|| {
                        |i| {
                            let name = &names[i as usize % NAMES];
                            black_box(env.get_template(name).unwrap());
                        }
                    })
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("rwlock-hashmap", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(iters, t, &|| {
                        |i| {
                            let name = &names[i as usize % NAMES];
                            let guard = rw.read().unwrap();
                            black_box(guard.get(name.as_str()).unwrap());
                        }
                    })
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("floor-hashmap", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(iters, t, &|| {
                        let own = map.clone();
                        move |i| {
                            let name = &names[i as usize % NAMES];
                            black_box(own.get(name.as_str()).unwrap());
                        }
                    })
                })
            },
        );
    }
    g.finish();
}

fn lookup_render(c: &mut Criterion) {
    let (dir, names) = fixture();
    let names = &names;
    let lock_free: TemplateCache<MiniJinja, LockFree> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
    let blocking: TemplateCache<MiniJinja, Blocking> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
    warm(&lock_free, names);
    warm(&blocking, names);
    let env = path_env(dir.path(), names);

    let mut g = c.benchmark_group("template/lookup+render");
    // No `Throughput`: with one, criterion plots throughput against the element count
    // (always 1) instead of time against the thread count, and draws no `lines.svg`.
    for threads in THREADS {
        ours_render(&mut g, &lock_free, names, threads);
        ours_render(&mut g, &blocking, names, threads);
        g.bench_with_input(
            BenchmarkId::new("minijinja-path-loader", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(iters, t, &|| {
                        |i| {
                            let name = &names[i as usize % NAMES];
                            let tmpl = env.get_template(name).unwrap();
                            let ctx = Value::from(Serde(&Ctx {
                                name: "World",
                                n: i,
                            }));
                            black_box(tmpl.render(ctx).unwrap());
                        }
                    })
                })
            },
        );
    }
    g.finish();
}

/// The convenience path against a kept reader (issue 14): `TemplateCache::render` keeps a
/// per-thread snapshot, so it should cost what `Reader::render` costs; `temporary-reader`
/// is what `render` did before (a new reader per call: an `Arc` clone and drop per render).
fn convenience(c: &mut Criterion) {
    let (dir, names) = fixture();
    let names = &names;
    let cache: TemplateCache<MiniJinja, LockFree> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
    warm(&cache, names);
    let ctx = |i| Ctx {
        name: "World",
        n: i,
    };
    let mut g = c.benchmark_group("template/convenience");
    for threads in [1, 2] {
        g.bench_with_input(BenchmarkId::new("reader", threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                parallel(iters, t, &|| {
                    let mut reader = cache.reader();
                    move |i| {
                        let name = &names[i as usize % NAMES];
                        black_box(reader.render(name, &ctx(i)).unwrap());
                    }
                })
            })
        });
        g.bench_with_input(
            BenchmarkId::new("cache.render", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(iters, t, &|| {
                        |i| {
                            let name = &names[i as usize % NAMES];
                            black_box(cache.render(name, &ctx(i)).unwrap());
                        }
                    })
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("temporary-reader", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(iters, t, &|| {
                        |i| {
                            let name = &names[i as usize % NAMES];
                            black_box(cache.reader().render(name, &ctx(i)).unwrap());
                        }
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, lookup, lookup_render, convenience);
criterion_main!(benches);
